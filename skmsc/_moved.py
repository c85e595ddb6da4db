"""Old import paths of public modules that moved: they still work for one release, with a
``FutureWarning`` naming the new place."""

from __future__ import annotations

import importlib
import warnings


def moved_module(old_module: str, new_module: str):
    """A module ``__getattr__`` giving ``new_module``'s names, each with a ``FutureWarning``."""

    def __getattr__(name):
        target = importlib.import_module(new_module)
        if name.startswith("__") or not hasattr(target, name):
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        warnings.warn(
            f"{old_module} moved to {new_module}: import {name} from {new_module}. "
            "The old path will be removed in the next release.",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(target, name)

    return __getattr__
