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
from scipy.stats import binom
from sklearn.base import _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import persistence
from .._checks import (
    DivergenceError,
    check_enough_samples,
    check_feature_range,
    check_input_container,
    explained_non_finite,
    normal_mask,
    warn_if_labelled_anomalies,
)
from .._gallery import REDUCTIONS, gallery_rows, leave_one_out_distances, reduce_gallery
from .._version import __version__
from ..neighbors import KNNScorer, make_index, resolve_knn_algorithm
from ._saved_fields import (
    OMIT,
    FittedField,
    SavedFieldError,
    require,
    saved_array,
    saved_float,
    saved_int,
    saved_str,
    saved_value,
)
from ._state import fits_aside, snapshot

__all__ = ["AUTO_CONTAMINATION", "ConformalGuaranteeWarning", "InconsistentVersionWarning",
           "KNNScorerMixin", "SkmscEstimatorMixin", "conformal_pvalues_from",
           "exceed_confidence", "offset_from_scores", "resolve_contamination"]

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


def store_params(estimator, arguments: dict) -> None:
    """Store each ``__init__`` argument unchanged under its own name, as scikit-learn
    expects: ``store_params(self, locals())`` is the whole body of every estimator's
    ``__init__``, so the estimators that share parameters share no assignments."""
    for name in type(estimator)._get_param_names():
        setattr(estimator, name, arguments[name])


def validated_fit_array(estimator, X, *, allow_nd: bool):
    """An array ``X`` checked for ``fit``: skmsc's clear errors for mistaken containers and
    non-finite values, then scikit-learn's ``validate_data`` (which sets
    ``n_features_in_``). The one array check of every estimator's ``fit``."""
    check_input_container(X)
    with explained_non_finite(X):
        return validate_data(estimator, X, dtype="numeric", allow_nd=allow_nd,
                             ensure_min_samples=1)


def check_training_set(estimator, n_samples: int, y, min_neighbors: int) -> None:
    """Warn if ``y`` marks training rows as anomalies; refuse too few samples for
    ``min_neighbors`` leave-one-out neighbours."""
    warn_if_labelled_anomalies(y, n_samples, type(estimator).__name__)
    check_enough_samples(n_samples, min_neighbors)


def feature_copy(X) -> np.ndarray:
    """Feature vectors as a new float32 array (never a view of the caller's data, also of
    a float32 memmap), their distances checked to be finite."""
    features = np.array(X, dtype=np.float32, copy=True)
    check_feature_range(features)
    return features


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


def exceed_confidence(train_scores, scores, contamination) -> np.ndarray:
    """ExCeeD confidence in each prediction, as PyOD's ``predict_confidence`` computes it.

    Perini, Vercruyssen and Davis, "Quantifying the confidence of anomaly detectors in
    their example-wise predictions" (ECML PKDD 2020). With ``n`` training samples and
    ``m`` of their outlier scores (``-train_scores``) at or below a sample's outlier
    score, the sample's probability of scoring as an outlier is estimated as
    ``q = (1 + m) / (2 + n)``; the threshold flags the ``n * contamination`` most
    outlying training samples, so the prediction "anomaly" would stand for a training
    set drawn again with probability ``1 - BinomCDF(n - int(n * contamination); n, q)``.
    That is the confidence of a sample predicted anomalous; for one predicted normal it
    is one minus it. Near 1: the prediction is stable; near 0.5: it could go either way.

    Parameters
    ----------
    train_scores : array-like of shape (n_train,)
        Leave-one-out ``score_samples`` of the training samples (higher = more normal).
    scores : array-like of shape (n_samples,)
        ``score_samples`` of the samples predicted.
    contamination : float
        The fraction the threshold flags (``contamination_``).

    Returns
    -------
    confidence : ndarray of shape (n_samples,)
        In [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc._estimators._base import exceed_confidence
    >>> train = -np.arange(100.0)  # scores 0 (most normal) to -99; threshold -89.1
    >>> exceed_confidence(train, [0.0, -89.5, -200.0], 0.1).round(2).tolist()
    [1.0, 0.35, 1.0]
    """
    outlying_train = np.sort(-np.asarray(train_scores, dtype=np.float64))
    outlying = -np.asarray(scores, dtype=np.float64)
    n = len(outlying_train)
    at_or_below = np.searchsorted(outlying_train, outlying, side="right")
    q = (1.0 + at_or_below) / (2.0 + n)
    confidence = 1.0 - binom.cdf(n - int(n * contamination), n, q)
    threshold = -offset_from_scores(train_scores, contamination)
    return np.where(outlying > threshold, confidence, 1.0 - confidence)


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

    Fitting methods are decorated with :func:`~skmsc._estimators._state.fits_aside`
    (the new state is built aside and swapped in whole); reading methods work on
    :func:`~skmsc._estimators._state.snapshot` of the estimator.

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

    def check_params(self):
        """Check the parameters now, as ``fit`` does first, without fitting.

        ``fit`` (and ``partial_fit``) check the parameters themselves; call this to
        report a wrong value before slow work, such as listing or decoding images, or
        after ``set_params``. Nothing is changed: the same checks run again in ``fit``.

        Returns
        -------
        self : object
            The estimator, unchanged.

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            A parameter has a value it does not take (a ``ValueError`` and a
            ``TypeError``): the message names the parameter, what it takes and what it
            got. ``True``/``False`` are refused where a number is expected.

        See Also
        --------
        parameter_constraints : What each parameter takes.

        Examples
        --------
        >>> from skmsc import KNNDetector
        >>> KNNDetector(n_neighbors=3).check_params().n_neighbors
        3
        >>> KNNDetector(n_neighbors=0).check_params()
        Traceback (most recent call last):
        ...
        sklearn.utils._param_validation.InvalidParameterError: The 'n_neighbors' parameter \
of KNNDetector must be an int in the range [1, inf). Got 0 instead.
        >>> try:
        ...     KNNDetector().set_params(contamination=0.9).check_params()
        ... except ValueError as error:
        ...     print(str(error)[:59])
        The 'contamination' parameter of KNNDetector must be a str
        """
        self._validate_params()
        return self

    @classmethod
    def parameter_constraints(cls) -> dict:
        """What :meth:`check_params` accepts for each parameter (a new dict each call).

        For front ends that build their options from the estimator (``skmsc fit``
        offers one flag per parameter of
        :class:`~skmsc.MeanShiftedContrastiveDetector`, typed by its constraints).

        Returns
        -------
        constraints : dict
            Parameter name -> list of scikit-learn constraints: ``None``, a type,
            ``"boolean"``, ``"random_state"``, or the ``Interval`` and ``StrOptions``
            objects of ``sklearn.utils._param_validation``.

        Examples
        --------
        >>> from skmsc import KNNDetector
        >>> constraints = KNNDetector.parameter_constraints()
        >>> sorted(constraints) == sorted(KNNDetector().get_params())
        True
        >>> constraints["random_state"]
        ['random_state']
        """
        return {name: list(allowed) for name, allowed in cls._parameter_constraints.items()}

    def model_card(self) -> dict:
        """What a user needs to know about this fitted model, as a plain dict.

        The facts ``skmsc info`` and ``skmsc fit --verbose`` print: what the model was
        fitted on and when, with which network and starting weights, how fine-tuning
        went, where and in which arithmetic the network runs, its threshold, and the
        package versions it was fitted with. Every value is a ``str``, ``int``,
        ``float``, ``bool``, ``None``, or a list or dict of them, so ``json.dumps``
        takes the card as it is. It works the same on a loaded model (``load``).

        Returns
        -------
        card : dict
            In this order (a key appears only where the estimator has it):

            - ``class``: the estimator's class name;
            - ``skmsc_version``: the skmsc version it was fitted with
              (``versions_["skmsc"]``);
            - ``training_source``, ``n_samples_fit``, ``fit_started``, ``fit_seconds``:
              ``training_source_``, ``n_samples_fit_``, ``fit_started_`` (ISO 8601,
              UTC) and ``fit_seconds_``; ``None`` for saves made before they were
              recorded (a detector's ``n_samples_fit`` is then its number of training
              samples);
            - network estimators: ``backbone`` (``None`` when fitted on feature
              vectors), ``weights`` (``"imagenet"``, ``"random"`` or ``"file"``;
              ``None`` without a network), ``weights_file`` (the state-dict file, else
              ``None``), ``image_size`` (``image_size_``), ``input_shape``
              (``input_shape_`` as a list; ``None`` for image files), ``n_features``
              (length of a feature vector), ``epochs`` (the parameter), ``epochs_run``
              (``len(loss_curve_)``), ``best_epoch`` (``best_epoch_``; 0 is the
              pretrained network), ``loss_curve``, ``early_stopping`` (the parameter),
              ``validation_scores`` (``validation_scores_``), ``device`` (``device_``)
              and ``precision`` (``precision_``);
            - detectors: ``n_neighbors`` (the parameter), ``knn_algorithm``
              (``knn_algorithm_``), ``n_gallery`` (``len(gallery_)``), ``contamination``
              (the parameter), ``contamination_fraction`` (``contamination_``) and
              ``offset`` (``offset_``);
            - image detectors: ``reference_patches``, ``[n_patches, width]`` of the
              normal patches kept for ``anomaly_maps(method="patch")``
              (``reference_patches_``), ``None`` where none are kept (fitted on feature
              vectors, or saved before patch maps);
            - ``versions``: ``versions_``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.

        Examples
        --------
        >>> import json
        >>> import numpy as np
        >>> from skmsc import MeanShiftedContrastiveDetector
        >>> X = np.random.default_rng(0).integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
        >>> det = MeanShiftedContrastiveDetector("efficientnet_lite0", epochs=0, image_size=32,
        ...                                      random_state=0).fit(X)
        >>> card = det.model_card()
        >>> card["class"], card["backbone"], card["weights"], card["n_samples_fit"]
        ('MeanShiftedContrastiveDetector', 'efficientnet_lite0', 'imagenet', 20)
        >>> card["training_source"]
        'array of shape (20, 32, 32, 3), dtype uint8'
        >>> card["offset"] == det.offset_, card["contamination_fraction"]
        (True, 0.01)
        >>> json.loads(json.dumps(card)) == card  # plain values only
        True
        """
        model = snapshot(self)  # one consistent state, even while another thread fits
        check_is_fitted(model)
        versions = dict(model.versions_)
        n_samples = model.n_samples_fit_
        if n_samples is None and hasattr(model, "train_features_"):  # an older save
            n_samples = len(model.train_features_)
        return {
            "class": type(self).__name__,
            "skmsc_version": versions.get("skmsc"),
            "training_source": model.training_source_,
            "n_samples_fit": None if n_samples is None else int(n_samples),
            "fit_started": model.fit_started_,
            "fit_seconds": None if model.fit_seconds_ is None else float(model.fit_seconds_),
            **model._card_entries(),
            "versions": versions,
        }

    def _card_entries(self) -> dict:
        """The model card's entries of each mixin (cooperative: a mixin puts its own
        before those of the classes after it in the MRO)."""
        return {}

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
        fields = self._fitted_fields()
        if any(field.name in state for field in fields):
            for field in fields:  # pickled before the field existed
                if field.older is not None and field.name not in state:
                    setattr(self, field.name, field.older(self))
            self._restored()
        if "versions_" in state:
            warn_on_version_mismatch(state.get("versions_"), type(self).__name__)

    # ------------------------------------------------------------------ save / load
    _FITTED_FIELDS = (
        FittedField("versions_", lambda est, fitted, tensors: _restore_versions(fitted)),
        # Written even when absent (None): image-file fits have no n_features_in_.
        FittedField("n_features_in_", lambda est, fitted, tensors: (
            OMIT if saved_value(fitted, "n_features_in_") is None
            else saved_int(fitted, "n_features_in_", low=1)),
            save=lambda est: (int(est.n_features_in_) if hasattr(est, "n_features_in_")
                              else None)),
        FittedField("feature_names_in_", lambda est, fitted, tensors: _restore_feature_names(
            est, fitted), save=lambda est: ([str(n) for n in est.feature_names_in_]
                                            if hasattr(est, "feature_names_in_") else OMIT)),
        # The model card's facts (_record_fit); None each for saves made before them.
        FittedField("training_source_", lambda est, fitted, tensors: _restore_record(
            fitted, "training_source_"), older=lambda est: None),
        FittedField("n_samples_fit_", lambda est, fitted, tensors: _restore_record(
            fitted, "n_samples_fit_"), older=lambda est: None),
        FittedField("fit_started_", lambda est, fitted, tensors: _restore_record(
            fitted, "fit_started_"), older=lambda est: None),
        FittedField("fit_seconds_", lambda est, fitted, tensors: _restore_record(
            fitted, "fit_seconds_"), older=lambda est: None),
    )

    @classmethod
    def _fitted_fields(cls) -> tuple[FittedField, ...]:
        """Every level's ``_FITTED_FIELDS``, base classes first (a subclass may redeclare
        a field: it keeps its place)."""
        fields = {}
        for klass in reversed(cls.__mro__):
            for field in vars(klass).get("_FITTED_FIELDS", ()):
                fields[field.name] = field
        return tuple(fields.values())

    def _saved_state(self) -> tuple[dict, dict]:
        """(JSON-ready fitted attributes, arrays), from the declared fields."""
        fitted, tensors = {}, {}
        for field in self._fitted_fields():
            value = getattr(self, field.name) if field.save is None else field.save(self)
            if value is OMIT:
                continue
            if field.tensor and isinstance(value, dict):
                tensors.update(value)
            else:
                (tensors if field.tensor else fitted)[field.saved_as] = value
        return fitted, tensors

    def _restore_state(self, fitted: dict, tensors: dict) -> None:
        """Set every declared field from ``fitted``/``tensors``, each checked by its
        ``restore``; then the derived state (``_restored``)."""
        for field in self._fitted_fields():
            if field.older is not None:
                store = tensors if field.tensor else fitted
                if field.saved_as not in store:  # saved before the field existed
                    store = {**store, field.saved_as: field.older(self)}
                    fitted, tensors = (fitted, store) if field.tensor else (store, tensors)
            value = field.restore(self, fitted, tensors)
            if value is not OMIT:
                setattr(self, field.name, value)
        self._restored()

    def _restored(self) -> None:
        """Rebuild what is derived from the fitted fields and not saved (after ``load``
        and unpickling); cooperative."""

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


def _restore_versions(fitted: dict) -> dict:
    versions = saved_value(fitted, "versions_")
    require(isinstance(versions, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in versions.items()),
        "versions_", "expected a mapping of package names to version strings")
    return versions


def _restore_feature_names(est, fitted: dict):
    if "feature_names_in_" not in fitted:
        return OMIT
    names = fitted["feature_names_in_"]
    require(isinstance(names, list) and all(isinstance(n, str) for n in names),
            "feature_names_in_", "expected a list of strings")
    require(len(names) == getattr(est, "n_features_in_", None), "feature_names_in_",
            f"{len(names)} names for n_features_in_={getattr(est, 'n_features_in_', None)}")
    return np.asarray(names, dtype=object)


def _restore_record(fitted: dict, name: str):
    """A fact of the model card (``training_source_``, ``n_samples_fit_``,
    ``fit_started_``, ``fit_seconds_``), checked; ``None`` is allowed."""
    check = persistence.check
    value = fitted[name]
    if name == "training_source_":
        check(value is None or isinstance(value, str), "training_source_ is not a string")
    elif name == "n_samples_fit_":
        check(value is None or (isinstance(value, int) and not isinstance(value, bool)
                                and value >= 1),
              f"n_samples_fit_ {value!r} is not a positive integer")
    elif name == "fit_started_" and value is not None:
        try:
            datetime.fromisoformat(value)
        except (TypeError, ValueError):
            check(False, f"fit_started_ {value!r} is not an ISO 8601 date")
    elif name == "fit_seconds_":
        check(value is None or (isinstance(value, int | float) and not isinstance(
            value, bool) and math.isfinite(value) and value >= 0),
              f"fit_seconds_ {value!r} is not a duration in seconds")
    return value


def scoring_chunk_rows(n_features: int, batch_size: int) -> int:
    """Images per scoring chunk: a whole number of batches within the budget (>= 1 batch).

    Scoring extracts the features of one chunk, finds their neighbours and keeps only
    their scores, so memory does not grow with the number of images scored.
    """
    rows = SCORING_MEMORY_BUDGET_BYTES // (4 * max(1, n_features))
    return max(batch_size, rows - rows % batch_size)


# A coreset member's leave-one-out score (the coreset less itself) is far lower than a
# new sample's, and members are the gallery_size share of the training set: measured by
# benchmarks/gallery_threshold.py (docs/performance.md, section 8).
CORESET_THRESHOLD_WARNING = (
    "gallery_reduction='coreset' sets a threshold that flags fewer new normal samples than "
    "contamination asks, most at contamination up to the gallery_size fraction (measured "
    "in docs/performance.md, section 8): use gallery_reduction='kmeans', whose threshold "
    "held, or check predict's rate on held-out normal samples and move it with "
    "set_threshold."
)


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

    def knn_scorer(self) -> KNNScorer:
        """The scoring rule with this detector's ``n_neighbors``
        (:class:`skmsc.neighbors.KNNScorer`): what ``score_samples``, the leave-one-out
        threshold, ``anomaly_maps`` and the ONNX export apply."""
        return KNNScorer(self.n_neighbors)

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
            if self.gallery_reduction == "coreset":
                warnings.warn(CORESET_THRESHOLD_WARNING, UserWarning, stacklevel=3)
        gallery = features if reduced is None else reduced.vectors
        algorithm = resolve_knn_algorithm(self.knn_algorithm, len(gallery))
        index = make_index(gallery, algorithm, random_state=seed)
        if reduced is None:
            loo_distances, _ = index.kneighbors(features, self.n_neighbors, exclude_self=True)
        else:
            loo_distances = leave_one_out_distances(index, features, reduced, self.n_neighbors)
        self.train_features_ = features
        self.gallery_ = gallery
        self.train_scores_ = self.knn_scorer().from_distances(loo_distances)
        self.knn_algorithm_ = algorithm
        self._index = index
        self._index_seed = int(seed)
        self._update_threshold()
        if not (np.isfinite(self.train_scores_).all() and np.isfinite(self.offset_)):
            raise DivergenceError(
                f"The training scores or the threshold are not finite (offset_="
                f"{self.offset_}): the features are too large for their distances. Scale "
                "the features down (e.g. sklearn.preprocessing.StandardScaler)."
            )

    def _card_entries(self) -> dict:
        """The kNN scorer's entries of the model card (see ``model_card``)."""
        contamination = self.contamination
        return {
            "n_neighbors": int(self.n_neighbors),
            "knn_algorithm": str(self.knn_algorithm_),
            "n_gallery": int(len(self.gallery_)),
            "contamination": (contamination if isinstance(contamination, str)
                              else float(contamination)),
            "contamination_fraction": float(self.contamination_),
            "offset": float(self.offset_),
            **super()._card_entries(),
        }

    def _update_threshold(self) -> None:
        """Set ``offset_`` and ``contamination_`` from ``train_scores_`` and ``contamination``.

        Call it after anything that changes ``train_scores_`` (``fit``, ``partial_fit``) or
        the ``contamination`` parameter (:meth:`set_threshold`): the rule itself is
        :func:`offset_from_scores`.
        """
        self.contamination_ = resolve_contamination(self.contamination)
        self.offset_ = offset_from_scores(self.train_scores_, self.contamination_)

    @fits_aside  # contamination, contamination_ and offset_ change together
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

    def current_offset(self) -> float:
        """The threshold in force: ``offset_``, checked against ``contamination``.

        What ``decision_function`` subtracts from ``score_samples`` (and ``predict``
        thresholds at 0). Reading ``offset_`` directly skips the check.

        Returns
        -------
        offset : float
            ``offset_``, in ``score_samples`` units.

        Raises
        ------
        ValueError
            If ``contamination`` was changed (``set_params``) without
            :meth:`set_threshold`: ``offset_`` was set for another fraction.

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import KNNDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> det = KNNDetector().fit(X)
        >>> bool(det.current_offset() == det.offset_)
        True
        >>> scores = det.score_samples(X)
        >>> bool(np.allclose(det.decision_function(X), scores - det.current_offset()))
        True
        >>> det.set_params(contamination=0.1).current_offset()
        Traceback (most recent call last):
        ...
        ValueError: This KNNDetector's contamination is 0.1, but its threshold offset_ ...
        """
        return snapshot(self)._current_offset()

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

    @_fit_context(prefer_skip_nested_validation=True)
    @fits_aside
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
            Normal samples of the kind fitted on (see ``fit``); images may be of any size.
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
        # All or nothing: this runs on a stand-in (see fits_aside); the fitted arrays are
        # never changed in place, new ones are made.
        added = list(self._feature_chunks(X))
        features = np.concatenate([self.train_features_, *added])
        self._fit_knn(features, self._index_seed)
        self.n_samples_fit_ = len(features)  # the model card counts every sample
        return self

    def score_samples(self, X):
        """Normality score: minus the summed squared distance to the nearest training features.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples of the kind fitted on (see ``fit``); images may be of any size.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher means more normal.
        """
        return snapshot(self)._score_samples(X)

    def _score_samples(self, X):
        scorer = self.knn_scorer()
        parts = [
            scorer.scores(self._index, features)
            for features in self._feature_chunks(X)
        ]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for anomalies.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples of the kind fitted on (see ``fit``); images may be of any size.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        model = snapshot(self)  # scores and offset_ of one model, whatever a fit does
        offset = model._current_offset()
        return model._score_samples(X) - offset

    def predict(self, X):
        """+1 for normal samples, -1 for anomalies.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples of the kind fitted on (see ``fit``); images may be of any size.

        Returns
        -------
        labels : ndarray of shape (n_samples,) of int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def score(self, X, y, sample_weight=None):
        """ROC-AUC of ``decision_function`` on ``X``, with "normal" (label 1) as positive.

        What scikit-learn's ``GridSearchCV``, ``cross_val_score`` and
        ``cross_validate`` use when no ``scoring`` is given. It equals
        :func:`skmsc.model_selection.normal_roc_auc_score` of ``decision_function``: 1.0
        when every normal sample scores above every anomaly, 0.5 for a random ranking.
        It does not depend on the threshold (``contamination``).

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples of the kind fitted on (see ``fit``); images may be of any size.
        y : array-like of shape (n_samples,)
            1 for normal samples, 0 or -1 for anomalies (booleans: True = normal), as
            ``predict`` returns them; both kinds must be present. PyOD's labels (1 =
            anomaly) are the other way round: pass ``1 - y``.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            ROC-AUC in [0, 1], higher is better.

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import KNNDetector
        >>> rng = np.random.default_rng(0)
        >>> det = KNNDetector().fit(rng.normal(size=(200, 2)))
        >>> X_test = np.vstack([rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 4])
        >>> y_test = np.r_[np.ones(50), np.zeros(50)].astype(int)   # 1 = normal
        >>> round(det.score(X_test, y_test), 2)
        1.0
        """
        decision = self.decision_function(X)  # checks X first, as scikit-learn expects
        normal = normal_mask(y)
        if len(normal) != len(decision):
            raise ValueError(
                f"X has {len(decision)} samples but y has {len(normal)} labels: pass one "
                "label per sample."
            )
        if normal.all() or not normal.any():
            kind = "normal samples (label 1)" if normal.all() else "anomalies (label 0 or -1)"
            raise ValueError(
                f"y holds only {kind}: ROC-AUC needs both normal samples (1) and anomalies "
                "(0 or -1). In a search or cross_val_score, use a splitter whose test "
                "folds hold both, e.g. skmsc.model_selection.OneClassKFold, or "
                "StratifiedKFold."
            )
        return float(roc_auc_score(normal, decision, sample_weight=sample_weight))

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
        the p-values too small; a :class:`~skmsc.ConformalGuaranteeWarning` says so. It
        also says so for a gallery reduced by ``gallery_size``: the training samples'
        scores are then estimates (too high for a coreset, which makes the p-values
        conservative; close for k-means, measured in ``docs/performance.md``, section 8).

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples of the kind fitted on (see ``fit``); images may be of any size.

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
        model = snapshot(self)  # scores and train_scores_ of one model
        scores = model._score_samples(X)
        best_epoch = getattr(model, "best_epoch_", 0)
        if best_epoch:
            warnings.warn(
                f"This {type(self).__name__} keeps a network fine-tuned on its training "
                f"images (best_epoch_={best_epoch}): their leave-one-out scores may be more "
                "normal than new normal images' scores, so the conformal p-values may be "
                "too small and flag more than alpha of new normal images. The guarantee is "
                "exact for the pretrained network (epochs=0).",
                ConformalGuaranteeWarning, stacklevel=2,
            )
        if model.gallery_ is not model.train_features_:
            warnings.warn(
                f"This {type(self).__name__} searches a gallery reduced by gallery_size="
                f"{model.gallery_size!r} ({model.gallery_reduction}): the training samples' "
                "leave-one-out scores are estimates, so the conformal guarantee is "
                "approximate (docs/performance.md, section 8). It is exact with "
                "gallery_size=None.",
                ConformalGuaranteeWarning, stacklevel=2,
            )
        return conformal_pvalues_from(model.train_scores_, scores)

    def predict_proba(self, X):
        """PyOD's ``predict_proba``, defined by the conformal p-value: ``[p, 1 - p]``.

        Column 0 is :meth:`conformal_pvalues` (the share of the ``n`` leave-one-out
        training scores as low as the sample's, counted as ``(1 + k) / (n + 1)``), column 1
        is ``1 - p``: how far into the tail of the normal training samples' scores the
        sample lies. Neither is the probability that the sample is an anomaly (that
        would need the unknown share and kind of anomalies): they are calibrated ranks.
        What they guarantee is :meth:`conformal_pvalues`'s: for new normal samples
        exchangeable with the training samples (pretrained features, ``epochs=0``),
        ``proba[:, 1] >= 1 - alpha`` happens at most a fraction ``alpha`` of the time;
        a network fine-tuned on the training images weakens it (see there). Flagging
        ``proba[:, 1] >= 1 - contamination_`` is close to ``predict``'s rule (which
        interpolates between training scores) but not always identical.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples of the kind fitted on (see ``fit``); images may be of any size.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns ``[P(normal), P(anomaly)]`` as defined above; rows sum to 1. Column
            order is PyOD's (0 = inlier, 1 = outlier), not ``predict``'s labels.

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import KNNDetector
        >>> det = KNNDetector().fit(np.random.default_rng(0).normal(size=(99, 2)))
        >>> det.predict_proba([[0.0, 0.0], [9.0, 9.0]]).round(2).tolist()  # a rank, not P
        [[0.59, 0.41], [0.01, 0.99]]
        """
        check_is_fitted(self)
        model = snapshot(self)  # scores and train_scores_ of one model
        p = conformal_pvalues_from(model.train_scores_, model._score_samples(X))
        return np.column_stack([p, 1.0 - p])

    def predict_confidence(self, X):
        """PyOD's ``predict_confidence``: how stable each ``predict`` decision is (ExCeeD).

        The probability that the sample's prediction (anomaly or normal, by the current
        threshold) would stay the same if the training set were drawn again, estimated
        from its rank among the leave-one-out training scores (Perini, Vercruyssen and
        Davis, ECML PKDD 2020, as PyOD computes it: :func:`exceed_confidence`). Near 1
        for samples far from the threshold on either side, near 0.5 at the threshold.
        It says nothing of whether the prediction is right.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Samples of the kind fitted on (see ``fit``); images may be of any size.

        Returns
        -------
        confidence : ndarray of shape (n_samples,)
            In [0, 1].

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import KNNDetector
        >>> det = KNNDetector().fit(np.random.default_rng(0).normal(size=(500, 2)))
        >>> det.predict_confidence([[0.0, 0.0], [9.0, 9.0]]).round(2).tolist()
        [1.0, 1.0]
        """
        check_is_fitted(self)
        model = snapshot(self)  # scores, train_scores_ and offset_ of one model
        model._current_offset()  # refuses a contamination changed without set_threshold
        return exceed_confidence(model.train_scores_, model._score_samples(X),
                                 model.contamination_)

    def _fitted_pyod(self, name: str) -> KNNScorerMixin:
        if "train_scores_" not in self.__dict__:
            raise AttributeError(
                f"This {type(self).__name__} is not fitted yet: {name} exists after fit.")
        return snapshot(self)

    @property
    def decision_scores_(self) -> np.ndarray:
        """PyOD's name: outlier scores of the training samples, higher = more abnormal.

        ``-train_scores_``: each training sample's leave-one-out score (scored against the
        other training samples, as a new sample is scored), with PyOD's sign. Derived
        from the fitted state, so it follows ``set_threshold``, ``partial_fit``, pickling
        and ``save``/``load``.
        """
        return -self._fitted_pyod("decision_scores_").train_scores_

    @property
    def threshold_(self) -> float:
        """PyOD's name: the threshold on the ``decision_scores_`` scale, ``-offset_``.

        Samples whose outlier score (``-score_samples``) exceeds it are predicted
        anomalies, as ``predict`` does; set by ``contamination`` (``contamination_``).
        """
        return -self._fitted_pyod("threshold_").offset_

    @property
    def labels_(self) -> np.ndarray:
        """PyOD's name: 0 (normal) or 1 (anomaly) for each training sample.

        ``decision_scores_ > threshold_``: the training samples ``predict`` would flag if
        they were new samples scoring their leave-one-out scores; about
        ``contamination_`` of them are 1. PyOD's labels (1 = anomaly), not ``predict``'s
        (+1 / -1).
        """
        model = self._fitted_pyod("labels_")
        return (model.train_scores_ < model.offset_).astype(np.int64)

    def kneighbors(self, X=None, n_neighbors=None):
        """The nearest training samples of each sample of ``X``, with squared distances.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images, default=None
            Samples of the kind fitted on (see ``fit``). ``None``: the training
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
            Row indices into ``gallery_``: the training data (``train_features_``),
            unless ``gallery_size`` reduced it.

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
        n_train = len(self.gallery_)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        available = n_train - 1 if X is None else n_train
        _check_n_neighbors(k, available, leave_one_out=X is None)
        if X is None and self.gallery_ is not self.train_features_:
            raise ValueError(
                f"kneighbors() without X finds each training sample's nearest others, but "
                f"this detector's gallery was reduced (gallery_size={self.gallery_size!r}) "
                "to vectors that are not training samples. Pass X, or refit with "
                "gallery_size=None."
            )
        if X is None:
            return self._index.kneighbors(self.train_features_, k, exclude_self=True)
        features = np.concatenate(list(self._feature_chunks(X)))
        return self._index.kneighbors(features, k)

    def _rebuild_index(self) -> None:
        self._index = make_index(self.gallery_, self.knn_algorithm_, random_state=self._index_seed)

    def __getstate__(self):
        # object.__getstate__ returns the live __dict__: copy before editing.
        state = dict(super().__getstate__())
        state.pop("_index", None)  # rebuilt from train_features_ on load (same seed)
        return state

    def _restored(self) -> None:
        super()._restored()
        self._rebuild_index()

    _FITTED_FIELDS = (
        FittedField("train_features_", lambda est, fitted, tensors: _restore_features(
            est, tensors), tensor=True),
        FittedField("train_scores_", lambda est, fitted, tensors: _restore_train_scores(
            tensors), tensor=True),
        FittedField("offset_", lambda est, fitted, tensors: saved_float(fitted, "offset_"),
                    save=lambda est: float(est.offset_)),
        FittedField("_index_seed", lambda est, fitted, tensors: saved_int(
            fitted, "index_seed", low=0, high=2**31 - 1), key="index_seed",
            save=lambda est: int(est._index_seed)),
        FittedField("knn_algorithm_", lambda est, fitted, tensors: saved_str(
            fitted, "knn_algorithm_", {"exact", "nndescent"})),
        # Saved only when gallery_size reduced it; else (and before gallery_size existed)
        # the training features themselves.
        FittedField("gallery_", lambda est, fitted, tensors: _restore_gallery(est, tensors),
                    save=lambda est: (OMIT if est.gallery_ is est.train_features_
                                      else est.gallery_),
                    tensor=True, older=lambda est: est.train_features_),
        # Before contamination_ existed: the parameter's.
        FittedField("contamination_", lambda est, fitted, tensors: _restore_threshold(
            est, fitted), save=lambda est: float(est.contamination_),
            older=lambda est: resolve_contamination(est.contamination)),
    )


def _restore_features(est, tensors: dict) -> np.ndarray:
    check = persistence.check
    for name in ("train_features_", "train_scores_"):
        check(name in tensors, f"tensor {name} is missing")
    features = saved_array(tensors, "train_features_", ndim=2)
    check(features.shape[1] >= 1, "train_features_ has no columns")
    check(tensors["train_scores_"].shape == (len(features),),
          "train_scores_ does not match train_features_")
    check(len(features) > est.n_neighbors, "fewer training samples than n_neighbors + 1")
    try:
        check_feature_range(features)
    except ValueError as exc:
        raise SavedFieldError(f"Saved fitted attribute 'train_features_' is invalid: "
                              f"{exc}") from None
    check(est.n_samples_fit_ in (None, len(features)),
          "n_samples_fit_ does not match train_features_")
    return features


def _restore_train_scores(tensors: dict) -> np.ndarray:
    scores = saved_array(tensors, "train_scores_", ndim=1,
                         dtype=tensors["train_scores_"].dtype)
    require(scores.dtype.kind == "f", "train_scores_", "expected floating-point scores")
    return scores.astype(np.float64)


def _restore_gallery(est, tensors: dict) -> np.ndarray:
    check = persistence.check
    gallery = saved_array(tensors, "gallery_", ndim=2)
    check(gallery.shape[1] == est.train_features_.shape[1],
          "gallery_ does not match train_features_")
    check(len(gallery) > est.n_neighbors, "fewer gallery vectors than n_neighbors + 1")
    return gallery


def _restore_threshold(est, fitted: dict) -> float:
    """``contamination_``, checked against ``offset_``: the threshold must follow from
    ``train_scores_`` by the rule."""
    check = persistence.check
    saved = fitted["contamination_"]
    try:
        contamination = resolve_contamination(saved)
    except (TypeError, ValueError):
        contamination = float("nan")
    check(isinstance(saved, numbers.Real | str) and 0 < contamination <= 0.5,
          f"contamination_ {saved!r} is not a fraction in (0, 0.5]")
    check(np.all(np.isfinite(est.train_scores_)), "train_scores_ are not finite")
    expected = offset_from_scores(est.train_scores_, contamination)
    check(np.isclose(est.offset_, expected, rtol=1e-9, atol=1e-12),
          f"offset_ {est.offset_!r} does not follow from train_scores_ and "
          f"contamination_ {contamination!r} (expected {expected!r})")
    return contamination
