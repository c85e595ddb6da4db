"""The layering the docs describe (docs/architecture.md), checked: old paths are gone, the
estimators never load the dataset loaders, and the layers import only downwards (where they
import: tests/project/test_import_rule.py)."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "skmsc"


@pytest.mark.parametrize("old", ["skmsc.backbones", "skmsc.augment", "skmsc.torch_model",
                                 "skmsc.image_files"])
def test_old_module_paths_are_gone(old):
    """They re-exported skmsc.nn / skmsc.data names for one release (0.1); nothing used them."""
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_fit_and_score_never_import_the_dataset_loaders():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from skmsc import KNNDetector, MeanShiftedContrastiveDetector, MeanShiftedFeatures
        X = np.random.default_rng(0).integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
        det = MeanShiftedContrastiveDetector(
            "efficientnet_lite0", epochs=1, batch_size=4, image_size=16, random_state=0
        ).fit(X)
        det.score_samples(X)
        KNNDetector().fit(MeanShiftedFeatures(
            "efficientnet_lite0", epochs=0, batch_size=4, image_size=16
        ).fit_transform(X))
        print(sorted(m for m in sys.modules if m.startswith("skmsc")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = eval(out.strip().splitlines()[-1])
    assert "skmsc.datasets" not in loaded and "skmsc.cli" not in loaded
    assert {"skmsc.nn", "skmsc.data.files", "skmsc.persistence"} <= set(loaded)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute skmsc module imported, whether inside a function) for one source file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.ImportFrom) and child.level:
                base = package.split(".")
                base = base[: len(base) - child.level + 1]
                if child.module:
                    found.append((".".join([*base, child.module]), inner))
                else:  # from .. import persistence
                    found.extend((".".join([*base, a.name]), inner) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("skmsc"):
                found.append((child.module, inner))
            elif isinstance(child, ast.Import):
                found.extend((a.name, inner) for a in child.names if a.name.startswith("skmsc"))
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


# Lower layers never import upper ones (a layer may import itself and those below it).
# Every module of the package belongs to one (test_every_module_has_a_layer).
LAYERS = [
    ("skmsc._version", "skmsc._checks", "skmsc._fileio", "skmsc.neighbors",
     "skmsc._gallery", "skmsc.presets"),
    ("skmsc.data",),
    ("skmsc.nn",),
    ("skmsc.persistence",),
    ("skmsc._estimators",),
    # Front ends: they use the estimators through the skmsc._estimators package only.
    ("skmsc.model_selection", "skmsc._defect_folders", "skmsc.datasets",
     "skmsc.plotting", "skmsc.parallel", "skmsc.onnx", "skmsc.cli", "skmsc.__main__",
     "skmsc"),
]
FRONT_ENDS = len(LAYERS) - 1

def _layer(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or (p != "skmsc" and module.startswith(p + ".")) for p in prefixes):
            return rank
    return None


def _modules():
    return [(path, _module_name(path)) for path in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_has_a_layer():
    assert [m for _, m in _modules() if _layer(m) is None] == []


def test_layers_import_downwards_only():
    """(That they import at module level is tests/project/test_import_rule.py's.)"""
    climbs = []
    for path, module in _modules():
        rank = _layer(module)
        for target, _ in _imports(path):
            target_rank = _layer(target)
            if target_rank is not None and target_rank > rank:
                climbs.append(f"{module} -> {target}")
    assert not climbs, climbs


def test_front_ends_use_the_estimator_package_not_its_modules():
    """``skmsc._estimators``' own modules are its business: a front end that needs more
    than the estimators gets it from the package's ``__all__``."""
    reaching = [
        f"{module} -> {target}"
        for path, module in _modules() if _layer(module) == FRONT_ENDS
        for target, _ in _imports(path) if target.startswith("skmsc._estimators.")
    ]
    assert not reaching, reaching
