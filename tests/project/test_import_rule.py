"""The import rule of docs/architecture.md: skmsc's own modules are imported at module level.

Two exceptions, each declared here with its reason:

- the command line (``skmsc.cli``) imports torch and the estimators only once a command
  needs them, so that ``skmsc --help`` and usage errors come at once and OpenMP's
  environment is set before torch loads;
- a package ``__init__`` may load public names on first use through a *lazy table*: a
  module-level dict literal ``_LAZY = {name: relative module}`` read by its module-level
  ``__getattr__`` (PEP 562), the only place ``import_module`` may be called.

The scan reads the source (AST), so a stray ``from .x import y`` in a function, or an
``importlib.import_module``/``__import__`` call, fails here whatever it imports.
"""

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "skmsc"

#: Modules that may import skmsc modules inside functions, and why.
LATE_IMPORTERS = {
    "skmsc.cli": "--help and usage errors come before torch; OpenMP is set before torch",
}
#: Packages whose public names are loaded lazily, and why.
LAZY_TABLES = {
    "skmsc": "skmsc.cli sets OpenMP's environment before the estimators import torch",
    "skmsc.onnx": "export_onnx imports torch; skmsc.onnx.ONNXDetector must not",
}
_DYNAMIC_IMPORTS = ("import_module", "__import__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    module = _module_name(path)
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def _absolute(package: str, level: int, module: str | None) -> str:
    base = package.split(".")
    base = base[: len(base) - level + 1]
    return ".".join([*base, module] if module else base)


def _own_imports(node, package: str) -> list[str]:
    """skmsc modules an import statement names (relative imports are always ours)."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            if node.module:
                return [_absolute(package, node.level, node.module)]
            return [_absolute(package, node.level, alias.name) for alias in node.names]
        return [node.module] if (node.module or "").split(".")[0] == "skmsc" else []
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "skmsc"]
    return []


def _dynamic_import(node) -> bool:
    """A call of ``import_module`` (any spelling: ``importlib.import_module``, an alias
    ``_import_module``) or of ``__import__``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name.lstrip("_") == "import_module" or name == "__import__"


def _lazy_getattr(tree: ast.Module):
    return next((node for node in tree.body if isinstance(node, ast.FunctionDef)
                 and node.name == "__getattr__"), None)


def violations(path: Path) -> list[str]:
    """Function-level imports of skmsc modules and dynamic imports in one source file,
    less those the module is declared to make."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    lazy = _lazy_getattr(tree) if module in LAZY_TABLES else None
    found = []

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                          | ast.ClassDef):
                inner = scope or child
            if inner is not None and module not in LATE_IMPORTERS:
                for target in _own_imports(child, _package_of(path)):
                    found.append(f"{module}:{child.lineno} imports {target} inside "
                                 f"{getattr(inner, 'name', 'a lambda')}")
            if _dynamic_import(child) and not (lazy is not None and inner is lazy):
                found.append(f"{module}:{child.lineno} calls {ast.unparse(child.func)}: "
                             "imports are statements at module level, or a declared lazy "
                             "table's __getattr__")
            visit(child, inner)

    visit(tree, None)
    return found


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_own_modules_are_imported_at_module_level():
    found = [v for path in _modules() for v in violations(path)]
    assert not found, found


def _lazy_table(module: str) -> dict:
    path = PACKAGE.joinpath(*module.split(".")[1:], "__init__.py")
    tree = ast.parse(path.read_text())
    tables = [node.value for node in tree.body if isinstance(node, ast.Assign)
              and [getattr(t, "id", None) for t in node.targets] == ["_LAZY"]]
    assert len(tables) == 1, f"{module} must assign one module-level _LAZY dict"
    table = ast.literal_eval(tables[0])  # a literal: declared, not computed
    assert all(isinstance(k, str) and isinstance(v, str) and v.startswith(".")
               for k, v in table.items()), table
    return table


def test_only_declared_lazy_tables_define_a_module_getattr():
    defining = {_module_name(path) for path in _modules()
                if _lazy_getattr(ast.parse(path.read_text())) is not None}
    assert defining == set(LAZY_TABLES)


@pytest.mark.parametrize("module", sorted(LAZY_TABLES))
def test_lazy_tables_are_declared_and_resolve(module):
    table = _lazy_table(module)
    package = importlib.import_module(module)
    assert set(table) <= set(package.__all__)
    for name, target in table.items():
        assert importlib.util.resolve_name(target, module).startswith(module + "."), target
        expected = getattr(importlib.import_module(target, module), name)
        assert getattr(package, name) is expected, name
    assert set(table) <= set(dir(package))


def test_the_rule_catches_a_stray_import(tmp_path, monkeypatch):
    """The scan finds a function-level import, and a dynamic one, in an ordinary module."""
    stray = tmp_path / "skmsc" / "plotting.py"
    stray.parent.mkdir()
    stray.write_text("import importlib\n\n\ndef f():\n    from .nn import augment\n"
                     "    return importlib.import_module('skmsc.cli')\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "skmsc")
    found = violations(stray)
    assert len(found) == 2 and "skmsc.nn inside f" in found[0], found
    assert "calls importlib.import_module" in found[1], found
