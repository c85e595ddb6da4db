"""Write the API reference sources from the package itself, so new objects appear unasked.

The reference has one page per public module: ``skmsc`` (its ``__all__``) and every
module ``skmsc.<name>`` whose name has no leading underscore (its ``__all__``, or else
the public functions and classes defined in it). Each page lists its objects in an
``autosummary`` table; autosummary then writes one page per object. The sources go to
``docs/api/`` (not versioned), rewritten on every build.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
from pathlib import Path

PACKAGE = "skmsc"


def public_modules(package: str = PACKAGE) -> list[str]:
    """The package and its submodules whose names have no leading underscore, sorted."""
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def public_names(module_name: str) -> list[str]:
    """Names a module documents: its ``__all__`` less dunders, or its own public defs."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name for name, obj in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module_name
        ]
    return sorted(name for name in names if not name.startswith("__"))


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj):
        return "function"
    return "data"  # constants, and callable instances such as scikit-learn scorers


def _module_page(module_name: str) -> str:
    module = importlib.import_module(module_name)
    groups: dict[str, list[str]] = {"class": [], "function": [], "data": []}
    for name in public_names(module_name):
        groups[_kind(getattr(module, name))].append(name)
    title = f"``{module_name}``"
    lines = [
        f".. _api-{module_name}:",
        "",
        title,
        "=" * len(title),
        "",
        f".. automodule:: {module_name}",
        "   :no-members:",
        "",
        f".. currentmodule:: {module_name}",
        "",
    ]
    headings = {"class": "Classes", "function": "Functions"}
    for kind, heading in headings.items():
        if not groups[kind]:
            continue
        # Page layouts: docs/_templates/autosummary/{class,function}.rst.
        lines += [heading, "-" * len(heading), "", ".. autosummary::",
                  "   :toctree: generated/", ""]
        lines += [f"   {name}" for name in groups[kind]]
        lines.append("")
    if groups["data"]:
        lines += ["Constants", "---------", ""]
        for name in groups["data"]:
            lines += [f".. autodata:: {name}", "   :no-value:", ""]
    return "\n".join(lines)


def write_api_pages(docs_dir: Path, package: str = PACKAGE) -> list[str]:
    """(Re)write ``docs_dir/api``; return the documented modules."""
    api_dir = docs_dir / "api"
    if api_dir.exists():
        # Stale pages of removed objects would otherwise warn as orphans.
        shutil.rmtree(api_dir)
    api_dir.mkdir()
    modules = public_modules(package)
    for module_name in modules:
        (api_dir / f"{module_name}.rst").write_text(_module_page(module_name))
    index = [
        ".. _api:",
        "",
        "API reference",
        "=============",
        "",
        "Every public object of :mod:`skmsc`, one page each, generated from the code's",
        "docstrings. Import the detector from the package itself",
        "(``from skmsc import MeanShiftedContrastiveDetector``); the helpers live in the",
        "modules below.",
        "",
        ".. toctree::",
        "   :maxdepth: 2",
        "",
        *[f"   {module_name}" for module_name in modules],
        "",
    ]
    (api_dir / "index.rst").write_text("\n".join(index))
    return modules
