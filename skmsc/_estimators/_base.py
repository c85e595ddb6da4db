"""What every skmsc estimator shares, and the kNN scorer both detectors are made of.

- :class:`SkmscEstimatorMixin`: the docs link of the HTML repr, the versions it was
  fitted with (checked again on load), all-or-nothing ``fit``, and ``save``/``load``
  through :mod:`skmsc.persistence`, each class contributing its own safe state.
- :class:`KNNScorerMixin`: ``score_samples``, ``decision_function``, ``predict``,
  ``conformal_pvalues``, ``kneighbors``, the leave-one-out threshold (and
  ``set_threshold`` to move it) and the index rebuilt after loading. A detector writes
  ``fit`` and ``_feature_chunks`` (its features of ``X``) only.

The threshold rule lives in one place: :func:`offset_from_scores` (the ``contamination``
quantile of the leave-one-out training scores), applied by
``KNNScorerMixin._update_threshold``, which every method that changes ``train_scores_``
or ``contamination`` calls.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
import warnings
from datetime import UTC, datetime
from numbers import Integral, Real

import numpy
import numpy as np
import sklearn
import torch
import torchvision
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted

from .. import persistence
from .._version import __version__
from ..neighbors import knn_scores, make_index, resolve_knn_algorithm

__all__ = ["AUTO_CONTAMINATION", "ConformalGuaranteeWarning", "InconsistentVersionWarning",
           "KNNScorerMixin", "SkmscEstimatorMixin", "conformal_pvalues_from",
           "offset_from_scores", "resolve_contamination"]

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


def resolve_contamination(contamination) -> float:
    """The fraction ``contamination`` stands for: ``"auto"`` is :data:`AUTO_CONTAMINATION`.

    Examples
    --------
    >>> from skmsc._estimators._base import resolve_contamination
    >>> resolve_contamination("auto"), resolve_contamination(0.05)
    (0.01, 0.05)
    """
    return AUTO_CONTAMINATION if contamination == "auto" else float(contamination)


def offset_from_scores(train_scores, contamination) -> float:
    """The threshold rule: the ``contamination`` quantile of the leave-one-out scores.

    The one definition of ``offset_`` (``fit``, :meth:`KNNScorerMixin.set_threshold` and
    anything that updates ``train_scores_`` go through it): ``train_scores`` are the
    training samples' leave-one-out scores (each scored against the others, as a fresh
    normal sample is scored), so about ``contamination`` of new normal samples score
    below the result.

    Parameters
    ----------
    train_scores : array-like of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training samples.
    contamination : "auto" or float
        Fraction of normal samples to flag; ``"auto"`` is 0.01.

    Returns
    -------
    offset : float

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc._estimators._base import offset_from_scores
    >>> offset_from_scores(-np.arange(101.0), 0.1)
    -90.0
    """
    fraction = resolve_contamination(contamination)
    return float(np.percentile(np.asarray(train_scores, dtype=np.float64), 100.0 * fraction))


def conformal_pvalues_from(calibration_scores, scores) -> np.ndarray:
    """Conformal p-values: ``(1 + #{calibration <= score}) / (n_calibration + 1)``.

    Parameters
    ----------
    calibration_scores : array-like of shape (n_calibration,)
        Scores of normal samples exchangeable with the new normal samples (higher = more
        normal).
    scores : array-like of shape (n_samples,)
        Scores of the samples to test.

    Returns
    -------
    p_values : ndarray of shape (n_samples,)
        In ``[1 / (n_calibration + 1), 1]``; small means unusual. Ties count as "as low".

    Examples
    --------
    >>> from skmsc._estimators._base import conformal_pvalues_from
    >>> conformal_pvalues_from([-4.0, -3.0, -2.0, -1.0], [-5.0, -3.0, 0.0]).tolist()
    [0.2, 0.6, 1.0]
    """
    calibration = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    scores = np.asarray(scores, dtype=np.float64)
    as_low = np.searchsorted(calibration, scores, side="right")
    return (1.0 + as_low) / (len(calibration) + 1.0)


class ConformalGuaranteeWarning(UserWarning):
    """The conformal p-values of a detector whose network was fine-tuned on its training images.

    Their leave-one-out scores may then be more normal than those of new normal images,
    which makes the p-values too small: the false-alarm guarantee is not exact. See
    :meth:`MeanShiftedContrastiveDetector.conformal_pvalues`.

    Examples
    --------
    >>> from skmsc import ConformalGuaranteeWarning
    >>> issubclass(ConformalGuaranteeWarning, UserWarning)  # filter it like any UserWarning
    True
    """


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

    # The "?" icon of the estimator's HTML repr (Jupyter) points at skmsc's API page, where
    # the docs build writes it (docs/_ext/api_pages.py: api/<module>.rst, toctree generated/).
    _doc_link_module = "skmsc"
    _doc_link_template = DOCS_URL + "api/generated/{estimator_module}.{estimator_name}.html"

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

    @staticmethod
    def _fit_clock() -> tuple[float, float]:
        """(wall-clock time, monotonic time) at the start of ``fit``, for ``_record_fit``."""
        return time.time(), time.perf_counter()

    def _record_fit(self, clock: tuple[float, float], source: str, n_samples: int) -> None:
        """The facts of this fit a model card shows: versions, data, date, duration."""
        started, start = clock
        self._record_versions()
        self.training_source_ = str(source)
        self.n_samples_fit_ = int(n_samples)
        self.fit_started_ = datetime.fromtimestamp(started, UTC).isoformat(
            timespec="seconds")
        self.fit_seconds_ = float(time.perf_counter() - start)

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
        fitted.update({name: getattr(self, name, None) for name in _FIT_RECORD})
        return fitted, {}

    def _restore_state(self, fitted: dict, tensors: dict) -> None:
        """Set this level's fitted attributes from ``fitted``/``tensors``, checking them."""
        self.versions_ = fitted["versions_"]
        if fitted["n_features_in_"] is not None:
            self.n_features_in_ = int(fitted["n_features_in_"])
        if "feature_names_in_" in fitted:
            self.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        self._restore_fit_record(fitted)

    def _restore_fit_record(self, fitted: dict) -> None:
        """``training_source_``, ``n_samples_fit_``, ``fit_started_``, ``fit_seconds_``,
        checked; ``None`` each for saves made before they were recorded."""
        check = persistence.check
        record = {name: fitted.get(name) for name in _FIT_RECORD}
        source, n_samples = record["training_source_"], record["n_samples_fit_"]
        started, seconds = record["fit_started_"], record["fit_seconds_"]
        check(source is None or isinstance(source, str), "training_source_ is not a string")
        check(n_samples is None or (isinstance(n_samples, int)
                                    and not isinstance(n_samples, bool) and n_samples >= 1),
              f"n_samples_fit_ {n_samples!r} is not a positive integer")
        if started is not None:
            try:
                datetime.fromisoformat(started)
            except (TypeError, ValueError):
                check(False, f"fit_started_ {started!r} is not an ISO 8601 date")
        check(seconds is None or (isinstance(seconds, int | float) and not isinstance(
            seconds, bool) and math.isfinite(seconds) and seconds >= 0),
              f"fit_seconds_ {seconds!r} is not a duration in seconds")
        for name, value in record.items():
            setattr(self, name, value)

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


# Facts about a fit kept for its model card (``skmsc info``): set by
# ``SkmscEstimatorMixin._record_fit``, saved and checked on load.
_FIT_RECORD = ("training_source_", "n_samples_fit_", "fit_started_", "fit_seconds_")


def scoring_chunk_rows(n_features: int, batch_size: int) -> int:
    """Images per scoring chunk: a whole number of batches within the budget (>= 1 batch).

    Scoring extracts the features of one chunk, finds their neighbours and keeps only
    their scores, so memory does not grow with the number of images scored.
    """
    rows = SCORING_MEMORY_BUDGET_BYTES // (4 * max(1, n_features))
    return max(batch_size, rows - rows % batch_size)


def _check_n_neighbors(k, available: int, *, leave_one_out: bool) -> None:
    """A clear ``TypeError``/``ValueError`` unless ``1 <= k <= available`` is an integer."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(
            f"n_neighbors must be an integer, got {k!r} ({type(k).__name__}). Pass e.g. "
            "n_neighbors=2, or None for the detector's n_neighbors."
        )
    if k < 1:
        raise ValueError(f"n_neighbors must be at least 1, got {k}.")
    if k > available:
        among = (f"the other {available} training samples (X=None leaves each sample's own "
                 "row out)" if leave_one_out else f"the {available} training samples")
        raise ValueError(
            f"n_neighbors={k} is more than there are: neighbours are searched among "
            f"{among}. Pass n_neighbors <= {available}."
        )


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
        self.train_features_ = features
        self.train_scores_ = -loo_distances.sum(axis=1)
        self.knn_algorithm_ = algorithm
        self._index = index
        self._index_seed = int(seed)
        self._update_threshold()

    def _update_threshold(self) -> None:
        """Set ``offset_`` and ``contamination_`` from ``train_scores_`` and ``contamination``.

        Call it after anything that changes ``train_scores_`` (``fit``, ``partial_fit``) or
        the ``contamination`` parameter (:meth:`set_threshold`): the rule itself is
        :func:`offset_from_scores`.
        """
        self.contamination_ = resolve_contamination(self.contamination)
        self.offset_ = offset_from_scores(self.train_scores_, self.contamination_)

    def set_threshold(self, contamination=None):
        """Move the threshold to flag another fraction of normal samples, without refitting.

        Sets the ``contamination`` parameter and recomputes ``offset_`` from the stored
        leave-one-out ``train_scores_``, exactly as ``fit`` would with that parameter
        (fitting again gives the same threshold). Changing ``contamination`` with
        ``set_params`` alone leaves ``offset_`` as it was, so ``decision_function`` and
        ``predict`` then raise an error instead of using a threshold you did not ask for.

        Parameters
        ----------
        contamination : "auto" or float in (0, 0.5], default=None
            Fraction of new normal samples to flag (the false-alarm rate); ``"auto"`` is
            0.01. ``None`` applies the current ``contamination`` parameter (after
            ``set_params(contamination=...)``).

        Returns
        -------
        self : object
            The detector, with ``contamination``, ``contamination_`` and ``offset_`` updated.

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import KNNDetector
        >>> rng = np.random.default_rng(0)
        >>> det = KNNDetector().fit(rng.normal(size=(5000, 3)))
        >>> X_new = rng.normal(size=(20000, 3))  # new normal samples
        >>> print(f"{np.mean(det.predict(X_new) == -1):.3f}")  # "auto": 0.01
        0.012
        >>> print(f"{np.mean(det.set_threshold(0.1).predict(X_new) == -1):.3f}")
        0.102
        >>> det.contamination, det.contamination_
        (0.1, 0.1)
        """
        check_is_fitted(self)
        if contamination is None:
            contamination = self.contamination
        validate_parameter_constraints(
            {"contamination": KNN_PARAMETER_CONSTRAINTS["contamination"]},
            {"contamination": contamination}, caller_name=f"{type(self).__name__}.set_threshold",
        )
        self.contamination = contamination
        self._update_threshold()
        return self

    def _current_offset(self) -> float:
        """``offset_``, after checking it was set for the ``contamination`` in force."""
        check_is_fitted(self)
        wanted = self.contamination
        try:
            stale = resolve_contamination(wanted) != self.contamination_
        except (TypeError, ValueError):
            stale = True
        if stale:
            name = type(self).__name__
            raise ValueError(
                f"This {name}'s contamination is {wanted!r}, but its threshold offset_ was "
                f"set for contamination={self.contamination_!r}: decision_function and "
                "predict would flag the old fraction. Call "
                f"set_threshold({wanted!r}) on the {name} to move the threshold without "
                "fitting again (it only needs the stored train_scores_), or fit again."
            )
        return self.offset_

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
        offset = self._current_offset()
        return self.score_samples(X) - offset

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

    def conformal_pvalues(self, X):
        """Conformal p-values: how unusual each sample is among the training samples.

        ``p = (1 + k) / (n + 1)``, where ``k`` of the ``n`` leave-one-out training scores
        (``train_scores_``: each training sample scored against the others, as a new
        sample is scored) are as low as the sample's ``score_samples`` or lower. A small
        ``p`` means few normal samples score that low. This is not the probability that
        the sample is an anomaly, which would need the (unknown) share and kind of
        anomalies.

        The guarantee: if a new normal sample and the training samples are exchangeable
        (drawn the same way, and the features do not depend on which of them was
        trained on), then ``P(p <= alpha) <= alpha`` for every ``alpha``, so flagging
        ``p <= alpha`` raises false alarms on at most a fraction ``alpha`` of new
        normal samples. It is marginal: averaged over the draw of the training set and
        of the new sample; for one fitted detector the rate varies around ``alpha``
        (for ``n`` training samples, by about ``sqrt(alpha (1 - alpha) / n)``). It says
        nothing of how many anomalies are caught, nor of samples from a shifted
        distribution (another camera, lighting, product). The smallest possible
        ``p`` is ``1 / (n + 1)``: levels below it flag nothing.

        Exchangeability holds for pretrained features (``epochs=0``, or
        ``best_epoch_ == 0`` when the safeguard kept the pretrained network) and for
        features computed without the training samples. A network fine-tuned on the
        training images may place them closer together than new normal images, making
        the p-values too small; a :class:`~skmsc.ConformalGuaranteeWarning` says so.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples shaped like the training data (see ``fit``).

        Returns
        -------
        p_values : ndarray of shape (n_samples,)
            In ``[1 / (n_train + 1), 1]``; flag ``p_values <= alpha`` for a false-alarm
            rate of at most ``alpha`` on new normal samples.

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import KNNDetector
        >>> rng = np.random.default_rng(0)
        >>> det = KNNDetector().fit(rng.normal(size=(4999, 3)))
        >>> p = det.conformal_pvalues(rng.normal(size=(20000, 3)))  # new normal samples
        >>> print(f"{np.mean(p <= 0.05):.3f}")  # at most 0.05, up to sampling error
        0.047
        >>> det.conformal_pvalues([[9.0, 9.0, 9.0]]).tolist()  # below every training score
        [0.0002]
        """
        scores = self.score_samples(X)
        best_epoch = getattr(self, "best_epoch_", 0)
        if best_epoch:
            warnings.warn(
                f"This {type(self).__name__} keeps a network fine-tuned on its training "
                f"images (best_epoch_={best_epoch}): their leave-one-out scores may be more "
                "normal than new normal images' scores, so the conformal p-values may be "
                "too small and flag more than alpha of new normal images. The guarantee is "
                "exact for the pretrained network (epochs=0).",
                ConformalGuaranteeWarning, stacklevel=2,
            )
        return conformal_pvalues_from(self.train_scores_, scores)

    def kneighbors(self, X=None, n_neighbors=None):
        """The nearest training samples of each sample of ``X``, with squared distances.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images, default=None
            Samples shaped like the training data (see ``fit``). ``None``: the training
            samples themselves, each searched among the *other* training samples (its
            own row is left out), as scikit-learn's ``LocalOutlierFactor`` and
            ``KNeighborsMixin.kneighbors`` do.
        n_neighbors : int, default=None
            How many; ``None`` means the detector's ``n_neighbors``. At least 1, and at
            most the number of training samples (one fewer when ``X`` is ``None``).

        Returns
        -------
        distances : ndarray of shape (n_samples, n_neighbors)
            *Squared* Euclidean distances in feature space, ascending (the anomaly score
            sums the first ``n_neighbors`` of them).
        indices : ndarray of shape (n_samples, n_neighbors)
            Row indices into the training data (``train_features_``).

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import KNNDetector
        >>> det = KNNDetector(n_neighbors=1).fit([[0.0], [1.0], [3.0]])
        >>> distances, indices = det.kneighbors([[0.9]], n_neighbors=2)
        >>> indices.tolist(), distances.round(2).tolist()
        ([[1, 0]], [[0.01, 0.81]])
        >>> det.kneighbors()[1].ravel().tolist()  # each training sample's nearest other one
        [1, 0, 1]
        """
        check_is_fitted(self)
        n_train = len(self.train_features_)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        available = n_train - 1 if X is None else n_train
        _check_n_neighbors(k, available, leave_one_out=X is None)
        if X is None:
            return self._index.kneighbors(self.train_features_, k, exclude_self=True)
        features = np.concatenate(list(self._feature_chunks(X)))
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
            if "contamination_" not in state:  # pickled before contamination_ existed
                self.contamination_ = resolve_contamination(self.contamination)
            self._rebuild_index()

    def _saved_state(self) -> tuple[dict, dict]:
        fitted, tensors = super()._saved_state()
        fitted.update(offset_=float(self.offset_), knn_algorithm_=self.knn_algorithm_,
                      index_seed=int(self._index_seed),
                      contamination_=float(self.contamination_))
        tensors.update(train_features_=self.train_features_, train_scores_=self.train_scores_)
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
        check(self.n_samples_fit_ in (None, len(features)),
              "n_samples_fit_ does not match train_features_")
        self._restore_threshold(fitted)
        self._rebuild_index()

    def _restore_threshold(self, fitted: dict) -> None:
        """``contamination_`` from the save (saves before it existed: the parameter), checked
        against ``offset_``: the threshold must follow from ``train_scores_`` by the rule."""
        check = persistence.check
        saved = fitted.get("contamination_", self.contamination)
        try:
            contamination = resolve_contamination(saved)
        except (TypeError, ValueError):
            contamination = float("nan")
        check(isinstance(saved, numbers.Real | str) and 0 < contamination <= 0.5,
              f"contamination_ {saved!r} is not a fraction in (0, 0.5]")
        check(np.all(np.isfinite(self.train_scores_)), "train_scores_ are not finite")
        expected = offset_from_scores(self.train_scores_, contamination)
        check(np.isclose(self.offset_, expected, rtol=1e-9, atol=1e-12),
              f"offset_ {self.offset_!r} does not follow from train_scores_ and "
              f"contamination_ {contamination!r} (expected {expected!r})")
        self.contamination_ = contamination
