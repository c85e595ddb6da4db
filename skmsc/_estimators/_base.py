"""What every skmsc estimator shares, and the kNN scorer both detectors are made of.

- :class:`SkmscEstimatorMixin`: the docs link of the HTML repr, the versions it was
  fitted with (checked again on load), all-or-nothing ``fit``, and ``save``/``load``
  through :mod:`skmsc.persistence`, each class contributing its own safe state.
- :class:`KNNScorerMixin`: ``score_samples``, ``decision_function``, ``predict``,
  ``kneighbors``, the leave-one-out threshold and the index rebuilt after loading. A
  detector writes ``fit`` and ``_feature_chunks`` (its features of ``X``) only.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy
import numpy as np
import sklearn
import torch
import torchvision
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import persistence
from .._checks import DivergenceError, check_feature_range
from .._version import __version__
from ..neighbors import knn_scores, make_index, resolve_knn_algorithm
from ._saved_fields import (
    SavedFieldError,
    require,
    saved_array,
    saved_float,
    saved_int,
    saved_str,
    saved_value,
)
from ._state import snapshot

__all__ = ["AUTO_CONTAMINATION", "InconsistentVersionWarning", "KNNScorerMixin",
           "SkmscEstimatorMixin"]

DOCS_URL = "https://skmsc.readthedocs.io/en/latest/"
# Fraction of leave-one-out training scores flagged when contamination="auto".
AUTO_CONTAMINATION = 0.01
# Bytes of query features (float32) held at once while scoring: 64 MiB is 13,107
# features of EfficientNet-Lite0 (1280-d) or 8,192 of a ResNet50 (2048-d).
SCORING_MEMORY_BUDGET_BYTES = 64 * 2**20
#: Constraints of the kNN scorer's parameters (shared by both detectors).
KNN_PARAMETER_CONSTRAINTS: dict = {
    "n_neighbors": [Interval(Integral, 1, None, closed="left")],
    "knn_algorithm": [StrOptions({"auto", "exact", "nndescent"})],
    "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
}


class InconsistentVersionWarning(UserWarning):
    """A saved skmsc model is loaded with package versions other than those it was fitted with.

    Scores may then differ from the saved model's: refit, or install the versions listed in
    the fitted object's ``versions_``.

    Examples
    --------
    >>> import warnings
    >>> from skmsc import InconsistentVersionWarning
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("fitted with torch 1.0", InconsistentVersionWarning)
    >>> [type(w.message).__name__ for w in caught]
    ['InconsistentVersionWarning']
    >>> issubclass(InconsistentVersionWarning, UserWarning)  # filter it like any UserWarning
    True
    """


def current_versions() -> dict[str, str]:
    """Versions of skmsc and the packages that decide its numbers."""
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
            stacklevel=4,
        )


class SkmscEstimatorMixin:
    """Docs link, versions, all-or-nothing fit and safe save/load for every estimator.

    Fitting methods are decorated with :func:`~skmsc._estimators._state.fits_aside`
    (the new state is built aside and swapped in whole); reading methods work on
    :func:`~skmsc._estimators._state.snapshot` of the estimator.

    Saving is cooperative: each class in the hierarchy adds its fitted attributes in
    ``_saved_state`` (returning JSON-ready values and arrays) and reads and checks them
    back in ``_restore_state``, so no list of attributes lives outside the class that
    owns them.
    """

    # The "?" icon of the estimator's HTML repr (Jupyter) points at skmsc's API page.
    _doc_link_module = "skmsc"
    _doc_link_template = DOCS_URL + "generated/{estimator_module}.{estimator_name}.html"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            persistence.LOADERS[cls.__name__] = cls

    def _validate_params(self):
        """scikit-learn's checks, and no ``True``/``False`` where a number is expected.

        ``bool`` is an ``int`` to Python, so ``Interval(Integral, ...)`` alone would take
        ``n_neighbors=True`` as 1.
        """
        for name, constraints in self._parameter_constraints.items():
            value = getattr(self, name, None)
            numeric = [c for c in constraints if isinstance(c, Interval)]
            if isinstance(value, bool) and numeric and "boolean" not in constraints:
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be "
                    f"{' or '.join(str(c) for c in constraints)}, not a bool. "
                    f"Got {value!r} instead."
                )
        super()._validate_params()

    def _record_versions(self) -> None:
        self.versions_ = current_versions()

    def __setstate__(self, state):
        super().__setstate__(state)
        if "versions_" in state:
            warn_on_version_mismatch(state.get("versions_"), type(self).__name__)

    # ------------------------------------------------------------------ save / load
    def _saved_state(self) -> tuple[dict, dict]:
        """(JSON-ready fitted attributes, arrays) of this class's level."""
        fitted = {
            "versions_": self.versions_,
            "n_features_in_": (
                int(self.n_features_in_) if hasattr(self, "n_features_in_") else None
            ),
        }
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(n) for n in self.feature_names_in_]
        return fitted, {}

    def _restore_state(self, fitted: dict, tensors: dict) -> None:
        """Set this level's fitted attributes from ``fitted``/``tensors``, checking them."""
        versions = saved_value(fitted, "versions_")
        require(isinstance(versions, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()),
            "versions_", "expected a mapping of package names to version strings")
        self.versions_ = versions
        if saved_value(fitted, "n_features_in_") is not None:
            self.n_features_in_ = saved_int(fitted, "n_features_in_", low=1)
        if "feature_names_in_" in fitted:
            names = fitted["feature_names_in_"]
            require(isinstance(names, list) and all(isinstance(n, str) for n in names),
                    "feature_names_in_", "expected a list of strings")
            require(len(names) == getattr(self, "n_features_in_", None), "feature_names_in_",
                    f"{len(names)} names for n_features_in_="
                    f"{getattr(self, 'n_features_in_', None)}")
            self.feature_names_in_ = np.asarray(names, dtype=object)

    def save(self, path):
        """Save to the folder ``path`` without pickle (see :mod:`skmsc.persistence`).

        Parameters
        ----------
        path : str or os.PathLike
            Folder for ``detector.json`` (parameters) and ``tensors.safetensors``.

        Returns
        -------
        path : pathlib.Path
        """
        model = snapshot(self)  # one consistent state, even while another thread fits
        check_is_fitted(model)
        fitted, tensors = model._saved_state()
        return persistence.write(
            path, class_name=type(self).__name__, params=model.get_params(deep=False),
            fitted=fitted, tensors=tensors,
        )

    @classmethod
    def load(cls, path):
        """Load an estimator saved with :meth:`save`; loading cannot run code from the files.

        Parameters
        ----------
        path : str or os.PathLike
            The folder given to :meth:`save`.

        Returns
        -------
        estimator : object
            Fitted; a network is on the saved device if this machine has it, else on the
            CPU.
        """
        saved = persistence.read(path)
        if saved.class_name != cls.__name__:
            raise ValueError(
                f"{str(path)!r} holds a {saved.class_name}, not a {cls.__name__}: load it "
                f"with {saved.class_name}.load or skmsc.persistence.load."
            )
        estimator = cls()
        try:
            estimator.set_params(**saved.params)
            estimator._validate_params()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"Saved parameters are not valid: {exc}") from exc
        try:
            estimator._restore_state(saved.fitted, saved.tensors)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(
                f"Saved fitted attributes are incomplete or malformed: {exc!r}"
            ) from exc
        warn_on_version_mismatch(estimator.versions_, cls.__name__)
        return estimator


def scoring_chunk_rows(n_features: int, batch_size: int) -> int:
    """Images per scoring chunk: a whole number of batches within the budget (>= 1 batch).

    Scoring extracts the features of one chunk, finds their neighbours and keeps only
    their scores, so memory does not grow with the number of images scored.
    """
    rows = SCORING_MEMORY_BUDGET_BYTES // (4 * max(1, n_features))
    return max(batch_size, rows - rows % batch_size)


class KNNScorerMixin:
    """The method's scorer: minus the summed squared distance to the nearest training features.

    The threshold ``offset_`` is a percentile of the training samples' *leave-one-out*
    scores (each scored against the others), so that ``contamination`` is the fraction of
    new normal samples flagged. Subclasses call :meth:`_fit_knn` in ``fit`` and define
    ``_feature_chunks(X)``: the validated features of ``X``, in one or more chunks.
    """

    def _fit_knn(self, features: np.ndarray, seed: int) -> None:
        """Index ``features`` and set the threshold from their leave-one-out scores."""
        algorithm = resolve_knn_algorithm(self.knn_algorithm, len(features))
        index = make_index(features, algorithm, random_state=seed)
        loo_distances, _ = index.kneighbors(features, self.n_neighbors, exclude_self=True)
        train_scores = -loo_distances.sum(axis=1)
        fraction = AUTO_CONTAMINATION if self.contamination == "auto" else self.contamination
        offset = float(np.percentile(train_scores, 100.0 * fraction))
        if not (np.isfinite(train_scores).all() and np.isfinite(offset)):
            raise DivergenceError(
                f"The training scores or the threshold are not finite (offset_={offset}): "
                "the features are too large for their distances. Scale the features "
                "down (e.g. sklearn.preprocessing.StandardScaler)."
            )
        self.train_features_ = features
        self.train_scores_ = train_scores
        self.offset_ = offset
        self.knn_algorithm_ = algorithm
        self._index = index
        self._index_seed = int(seed)

    def score_samples(self, X):
        """Normality score: minus the summed squared distance to the nearest training features.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples shaped like the training data (see ``fit``).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher means more normal.
        """
        return snapshot(self)._score_samples(X)

    def _score_samples(self, X):
        parts = [
            knn_scores(self._index, features, self.n_neighbors)
            for features in self._feature_chunks(X)
        ]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for anomalies.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples shaped like the training data (see ``fit``).

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        model = snapshot(self)  # scores and offset_ of one model, whatever a fit does
        return model._score_samples(X) - model.offset_

    def predict(self, X):
        """+1 for normal samples, -1 for anomalies.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples shaped like the training data (see ``fit``).

        Returns
        -------
        labels : ndarray of shape (n_samples,) of int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def kneighbors(self, X, n_neighbors=None):
        """The nearest training samples of each sample of ``X``.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples shaped like the training data (see ``fit``).
        n_neighbors : int, default=None
            How many; ``None`` means the detector's ``n_neighbors``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_neighbors)
            Squared Euclidean distances in feature space, ascending.
        indices : ndarray of shape (n_samples, n_neighbors)
            Row indices into the training data.
        """
        features = np.concatenate(list(self._feature_chunks(X)))
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        return self._index.kneighbors(features, k)

    def _rebuild_index(self) -> None:
        self._index = make_index(
            self.train_features_, self.knn_algorithm_, random_state=self._index_seed
        )

    def __getstate__(self):
        # object.__getstate__ returns the live __dict__: copy before editing.
        state = dict(super().__getstate__())
        state.pop("_index", None)  # rebuilt from train_features_ on load (same seed)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "train_features_" in state:
            self._rebuild_index()

    def _saved_state(self) -> tuple[dict, dict]:
        fitted, tensors = super()._saved_state()
        fitted.update(offset_=float(self.offset_), knn_algorithm_=self.knn_algorithm_,
                      index_seed=int(self._index_seed))
        tensors.update(train_features_=self.train_features_, train_scores_=self.train_scores_)
        return fitted, tensors

    def _restore_state(self, fitted: dict, tensors: dict) -> None:
        super()._restore_state(fitted, tensors)
        check = persistence.check
        for name in ("train_features_", "train_scores_"):
            check(name in tensors, f"tensor {name} is missing")
        features = saved_array(tensors, "train_features_", ndim=2)
        check(features.shape[1] >= 1, "train_features_ has no columns")
        check(tensors["train_scores_"].shape == (len(features),),
              "train_scores_ does not match train_features_")
        scores = saved_array(tensors, "train_scores_", ndim=1,
                             dtype=tensors["train_scores_"].dtype)
        require(scores.dtype.kind == "f", "train_scores_", "expected floating-point scores")
        check(len(features) > self.n_neighbors, "fewer training samples than n_neighbors + 1")
        try:
            check_feature_range(features)
        except ValueError as exc:
            raise SavedFieldError(f"Saved fitted attribute 'train_features_' is invalid: "
                                  f"{exc}") from None
        self.offset_ = saved_float(fitted, "offset_")
        self._index_seed = saved_int(fitted, "index_seed", low=0, high=2**31 - 1)
        self.knn_algorithm_ = saved_str(fitted, "knn_algorithm_", {"exact", "nndescent"})
        self.train_features_ = features
        self.train_scores_ = scores.astype(np.float64)
        self._rebuild_index()
