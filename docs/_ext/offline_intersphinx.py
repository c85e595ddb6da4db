"""Intersphinx links to Python, NumPy, scikit-learn and PyTorch without network access.

Sphinx normally downloads each project's ``objects.inv`` at build time; the docs must build
offline, and fetched inventories may not be committed. So this module writes small
inventories of its own, listing only the outside objects these docs refer to, with the
addresses of those projects' stable documentation as written here by hand (they are not
fetched or checked at build time).

If ``SKMSC_INTERSPHINX_DIR`` names a folder holding real inventories saved by the user
(``python.inv``, ``numpy.inv``, ``sklearn.inv``, ``torch.inv``,
``torchvision.inv``, ``joblib.inv``), those are used instead,
so every outside name resolves.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

# project -> (documentation root, project title, {(domain:role, name): page#anchor})
# "$" in an address stands for the object's name.
PROJECTS: dict[str, tuple[str, str, dict[tuple[str, str], str]]] = {
    "python": (
        "https://docs.python.org/3/",
        "Python",
        {
            **{("py:class", name): "library/functions.html#$" for name in (
                "int", "float", "str", "bool", "dict", "list", "tuple", "object",
            )},
            ("py:class", "os.PathLike"): "library/os.html#$",
            ("py:exc", "FileNotFoundError"): "library/exceptions.html#$",
            ("py:exc", "ValueError"): "library/exceptions.html#$",
            ("py:exc", "OSError"): "library/exceptions.html#$",
            ("py:exc", "pickle.UnpicklingError"): "library/pickle.html#$",
            ("py:mod", "pickle"): "library/pickle.html#module-pickle",
            ("py:mod", "random"): "library/random.html#module-random",
            ("py:class", "pathlib.Path"): "library/pathlib.html#$",
            ("std:term", "iterable"): "glossary.html#term-iterable",
            ("py:data", "None"): "library/constants.html#$",
        },
    ),
    "numpy": (
        "https://numpy.org/doc/stable/",
        "NumPy",
        {
            ("py:class", "numpy.ndarray"): "reference/generated/numpy.ndarray.html#$",
            ("py:class", "numpy.random.RandomState"): "reference/random/legacy.html#$",
            ("py:class", "numpy.random.Generator"): "reference/random/generator.html#$",
            ("std:term", "array_like"): "glossary.html#term-array_like",
        },
    ),
    "sklearn": (
        "https://scikit-learn.org/stable/",
        "scikit-learn",
        {
            **{("py:class", name): f"modules/generated/{name}.html#$" for name in (
                "sklearn.neighbors.LocalOutlierFactor",
                "sklearn.ensemble.IsolationForest",
                "sklearn.model_selection.GridSearchCV",
                "sklearn.model_selection.PredefinedSplit",
                "sklearn.pipeline.Pipeline",
            )},
            **{("py:function", name): f"modules/generated/{name}.html#$" for name in (
                "sklearn.base.clone",
                "sklearn.metrics.roc_auc_score",
                "sklearn.metrics.roc_curve",
                "sklearn.datasets.load_digits",
                "sklearn.utils.estimator_checks.parametrize_with_checks",
            )},
            ("std:term", "random_state"): "glossary.html#term-random_state",
            ("std:term", "outlier detector"): "glossary.html#term-outlier-detector",
        },
    ),
    "torch": (
        "https://docs.pytorch.org/docs/stable/",
        "PyTorch",
        {
            ("py:class", "torch.nn.Module"): "generated/torch.nn.Module.html#$",
            ("py:class", "torch.Tensor"): "tensors.html#$",
            ("py:class", "torch.device"): "tensor_attributes.html#$",
            ("py:class", "torch.Generator"): "generated/torch.Generator.html#$",
        },
    ),
    "joblib": (
        "https://joblib.readthedocs.io/en/stable/",
        "joblib",
        {("py:function", f"joblib.{name}"): "generated/$.html#$" for name in ("dump", "load")},
    ),
    "torchvision": (
        "https://docs.pytorch.org/vision/stable/",
        "torchvision",
        {("py:function", "torchvision.ops.roi_align"): "generated/$.html#$"},
    ),
}

USER_DIR_ENV = "SKMSC_INTERSPHINX_DIR"


def _inventory_bytes(title: str, objects: dict[tuple[str, str], str]) -> bytes:
    # Format: https://www.sphinx-doc.org/ "objects.inv" version 2: four plain header lines,
    # then zlib-compressed lines "name domain:role priority uri display-name".
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {title}\n"
        "# Version: stable\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = "".join(
        f"{name} {role} 1 {uri.replace('$', name)} -\n"
        for (role, name), uri in sorted(objects.items())
    )
    return header.encode() + zlib.compress(lines.encode())


def intersphinx_mapping(out_dir: Path) -> dict[str, tuple[str, str]]:
    """Write the inventories under ``out_dir``; return the ``intersphinx_mapping`` to use.

    Real inventories in ``$SKMSC_INTERSPHINX_DIR`` take precedence over the written ones.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    user_dir = os.environ.get(USER_DIR_ENV)
    mapping = {}
    for name, (root, title, objects) in PROJECTS.items():
        user_file = Path(user_dir, f"{name}.inv") if user_dir else None
        if user_file is not None and user_file.is_file():
            mapping[name] = (root, str(user_file))
            continue
        path = out_dir / f"{name}.inv"
        data = _inventory_bytes(title, objects)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        mapping[name] = (root, str(path))
    return mapping
