"""What every skmsc estimator shares: the link from its HTML repr to our docs, and the
versions it was fitted with, checked again when a saved model is loaded."""

from __future__ import annotations

import warnings

DOCS_URL = "https://skmsc.readthedocs.io/en/latest/"


class DocLinkMixin:
    """Points the "?" icon of the estimator's HTML repr (Jupyter) at skmsc's API page."""

    _doc_link_module = "skmsc"
    _doc_link_template = DOCS_URL + "generated/{estimator_module}.{estimator_name}.html"


class InconsistentVersionWarning(UserWarning):
    """A saved skmsc model is loaded with package versions other than those it was fitted with.

    Scores may then differ from the saved model's: refit, or install the versions listed in
    the fitted object's ``versions_``.

    Examples
    --------
    >>> import warnings
    >>> from skmsc import InconsistentVersionWarning
    >>> issubclass(InconsistentVersionWarning, UserWarning)
    True
    >>> with warnings.catch_warnings():  # inside, loading a mismatched model raises
    ...     warnings.simplefilter("error", InconsistentVersionWarning)
    """


def current_versions() -> dict[str, str]:
    """Versions of skmsc and the packages that decide its numbers."""
    import numpy
    import sklearn
    import torch
    import torchvision

    from ._version import __version__

    return {
        "skmsc": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
    }


def warn_on_version_mismatch(saved: dict | None, estimator_name: str) -> None:
    """Warn, naming each package, when ``saved`` differs from the installed versions."""
    if not saved:
        return
    installed = current_versions()
    differ = {
        name: (version, installed.get(name, "not installed"))
        for name, version in saved.items()
        if installed.get(name) != version
    }
    if differ:
        listed = ", ".join(f"{name} {old} (now {new})" for name, (old, new) in differ.items())
        warnings.warn(
            f"This {estimator_name} was fitted with {listed}. Its scores may differ from "
            "the saved model's: refit it, or install the versions in its versions_.",
            InconsistentVersionWarning,
            stacklevel=3,
        )
