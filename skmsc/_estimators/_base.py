"""What every skmsc estimator shares, and the kNN scorer both detectors are made of.

- :class:`SkmscEstimatorMixin`: the docs link of the HTML repr, the versions it was
  fitted with (checked again on load), all-or-nothing ``fit``, and ``save``/``load``
  through :mod:`skmsc.persistence`, each class contributing its own safe state.
- :class:`KNNScorerMixin`: ``score_samples``, ``decision_function``, ``predict``,
  ``kneighbors``, the leave-one-out threshold and the index rebuilt after loading. A
  detector writes ``fit`` and ``_feature_chunks`` (its features of ``X``) only.
"""

from __future__ import annotations

import contextlib
import warnings
from numbers import Integral, Real

import numpy
import numpy as np
import sklearn
import torch
import torchvision
from sklearn.base import _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import persistence
from .._gallery import REDUCTIONS, gallery_rows, leave_one_out_distances, reduce_gallery
from .._version import __version__
from ..neighbors import knn_scores, make_index, resolve_knn_algorithm

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
    "gallery_size": [None, Interval(Integral, 1, None, closed="left"),
                     Interval(Real, 0, 1, closed="right")],
    "gallery_reduction": [StrOptions(set(REDUCTIONS))],
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

    @contextlib.contextmanager
    def _all_or_nothing(self):
        """Never half-fitted: an error or an interrupt restores the previous state."""
        before = self.__dict__.copy()
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

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
        self.versions_ = fitted["versions_"]
        if fitted["n_features_in_"] is not None:
            self.n_features_in_ = int(fitted["n_features_in_"])
        if "feature_names_in_" in fitted:
            self.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)

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
        check_is_fitted(self)
        fitted, tensors = self._saved_state()
        return persistence.write(
            path, class_name=type(self).__name__, params=self.get_params(deep=False),
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
        except (KeyError, TypeError) as exc:
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
        """Index ``features`` (or the smaller gallery ``gallery_size`` asks for) and set the
        threshold from the training samples' leave-one-out scores."""
        n_gallery = gallery_rows(self.gallery_size, len(features))
        if n_gallery <= self.n_neighbors:
            raise ValueError(
                f"gallery_size={self.gallery_size!r} keeps {n_gallery} of {len(features)} "
                f"training samples; n_neighbors={self.n_neighbors} needs at least "
                f"{self.n_neighbors + 1}. Raise gallery_size or lower n_neighbors."
            )
        reduced = None
        if n_gallery < len(features):
            reduced = reduce_gallery(features, n_gallery, self.gallery_reduction, seed)
        gallery = features if reduced is None else reduced.vectors
        algorithm = resolve_knn_algorithm(self.knn_algorithm, len(gallery))
        index = make_index(gallery, algorithm, random_state=seed)
        if reduced is None:
            loo_distances, _ = index.kneighbors(features, self.n_neighbors, exclude_self=True)
        else:
            loo_distances = leave_one_out_distances(index, features, reduced, self.n_neighbors)
        self.train_features_ = features
        self.gallery_ = gallery
        self._set_threshold(-loo_distances.sum(axis=1))
        self.knn_algorithm_ = algorithm
        self._index = index
        self._index_seed = int(seed)

    def _set_threshold(self, train_scores: np.ndarray) -> None:
        """The threshold rule: ``offset_`` flags the ``contamination`` fraction of the
        training samples' leave-one-out scores."""
        fraction = AUTO_CONTAMINATION if self.contamination == "auto" else self.contamination
        self.train_scores_ = train_scores
        self.offset_ = float(np.percentile(train_scores, 100.0 * fraction))

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add the samples ``X`` to the gallery of normals; fit if not fitted yet.

        On a fitted detector nothing is trained: the features of ``X`` (from the fitted
        network, for images) join ``train_features_``, and the gallery, the leave-one-out
        ``train_scores_`` and ``offset_`` are recomputed exactly as ``fit`` computes them
        from the union (so the result equals a kNN fit on all the features; with
        ``gallery_size`` the gallery is reduced again from the union). This costs one
        leave-one-out search over the whole training set. On an unfitted detector it is
        ``fit(X)``.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Normal samples shaped like the training data (see ``fit``).
        y : Ignored
            Present for API consistency.

        Returns
        -------
        self : object
            The fitted detector.
        """
        try:
            check_is_fitted(self)
        except NotFittedError:
            return self.fit(X, y)
        self._validate_params()  # _fit_context skips this for a fitted partial_fit
        with self._all_or_nothing():
            added = list(self._feature_chunks(X))
            features = np.concatenate([self.train_features_, *added])
            self._fit_knn(features, self._index_seed)
        return self

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
        return self.score_samples(X) - self.offset_

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
            Row indices into ``gallery_``: the training data, unless ``gallery_size``
            reduced it.
        """
        features = np.concatenate(list(self._feature_chunks(X)))
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        return self._index.kneighbors(features, k)

    def _rebuild_index(self) -> None:
        self._index = make_index(self.gallery_, self.knn_algorithm_, random_state=self._index_seed)

    def __getstate__(self):
        # object.__getstate__ returns the live __dict__: copy before editing.
        state = dict(super().__getstate__())
        state.pop("_index", None)  # rebuilt from train_features_ on load (same seed)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "train_features_" in state:
            if "gallery_" not in state:  # pickled before gallery_size existed
                self.gallery_ = self.train_features_
            self._rebuild_index()

    def _saved_state(self) -> tuple[dict, dict]:
        fitted, tensors = super()._saved_state()
        fitted.update(offset_=float(self.offset_), knn_algorithm_=self.knn_algorithm_,
                      index_seed=int(self._index_seed))
        tensors.update(train_features_=self.train_features_, train_scores_=self.train_scores_)
        if self.gallery_ is not self.train_features_:  # reduced by gallery_size
            tensors["gallery_"] = self.gallery_
        return fitted, tensors

    def _restore_state(self, fitted: dict, tensors: dict) -> None:
        super()._restore_state(fitted, tensors)
        check = persistence.check
        for name in ("train_features_", "train_scores_"):
            check(name in tensors, f"tensor {name} is missing")
        features, scores = tensors["train_features_"], tensors["train_scores_"]
        check(features.ndim == 2 and features.dtype == np.float32,
              "train_features_ is not 2-D float32")
        check(scores.shape == (len(features),), "train_scores_ does not match train_features_")
        check(len(features) > self.n_neighbors, "fewer training samples than n_neighbors + 1")
        try:
            self.offset_ = float(fitted["offset_"])
            self._index_seed = int(fitted["index_seed"])
        except ValueError as exc:
            raise TypeError(str(exc)) from exc
        self.knn_algorithm_ = fitted["knn_algorithm_"]
        check(self.knn_algorithm_ in ("exact", "nndescent"), "unknown knn_algorithm_")
        self.train_features_ = features
        self.train_scores_ = scores.astype(np.float64)
        gallery = tensors.get("gallery_", features)
        check(gallery.ndim == 2 and gallery.dtype == np.float32
              and gallery.shape[1] == features.shape[1], "gallery_ does not match train_features_")
        check(len(gallery) > self.n_neighbors, "fewer gallery vectors than n_neighbors + 1")
        self.gallery_ = gallery
        self._rebuild_index()
