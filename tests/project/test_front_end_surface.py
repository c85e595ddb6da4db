"""The front ends use the estimators through their public surface (docs/architecture.md).

``skmsc fit`` checks its flags with ``check_params()`` and reads
``parameter_constraints()``; ``skmsc info`` prints ``model_card()``; the plots read the
threshold with ``current_offset()``; ``score_dask_array`` sizes ``transform``'s output
with ``get_feature_names_out()``. A front end reading ``obj._name`` of another object
(``detector._validate_params()``) fails here: give the estimators a public method instead.
A class or module the front end imports (scikit-learn's ``GridSearchCV``, which
``model_selection`` subclasses, or ``pickle``) is not an estimator it is handed.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "skmsc"
FRONT_ENDS = ["cli.py", "plotting.py", "parallel.py", "model_selection.py", "datasets.py",
              "_defect_folders.py", "__main__.py", "__init__.py", "onnx"]


def _files():
    for name in FRONT_ENDS:
        path = PACKAGE / name
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def private_reads(source: str) -> list[str]:
    """``x._name`` where ``x`` is neither ``self``/``cls`` nor a name the module imports."""
    tree = ast.parse(source)
    imported = {"self", "cls"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return [
        f"{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in imported)
    ]


def test_front_ends_read_no_private_member_of_what_they_are_given():
    found = {path.relative_to(PACKAGE).as_posix(): private_reads(path.read_text())
             for path in _files()}
    assert not {name: reads for name, reads in found.items() if reads}


def test_the_scan_sees_a_private_call():
    assert private_reads("def f(detector):\n    detector._validate_params()\n") == [
        "2: detector._validate_params"]
    assert private_reads("import pickle\nclass U(pickle._Unpickler):\n    x = self._y\n") == []
