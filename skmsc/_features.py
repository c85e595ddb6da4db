"""MeanShiftedFeatures: fine-tuning as ``fit``, embedding as ``transform``.

The expensive half of the method as a scikit-learn transformer, so that
``Pipeline(memory=...)`` caches it and a search over the kNN scorer's parameters
(:class:`KNNDetector`) fine-tunes once per fine-tuning setting and training fold.
"""

from __future__ import annotations

from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils.validation import check_is_fitted

from ._detector import MeanShiftedContrastiveDetector
from ._estimator_info import DocLinkMixin

__all__ = ["MeanShiftedFeatures"]

# The parameters that shape the features; the kNN ones belong to KNNDetector.
FEATURE_PARAMS = (
    "backbone", "weights", "frozen_stages", "epochs", "batch_size", "learning_rate",
    "weight_decay", "temperature", "angular", "image_size", "device", "precision",
    "random_state", "verbose",
)


class MeanShiftedFeatures(
    DocLinkMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Images to fine-tuned, unit-norm features (Reiss & Hoshen, AAAI 2023).

    ``fit`` runs exactly the fine-tuning of :class:`MeanShiftedContrastiveDetector` (same
    code, same seeds for the same ``random_state``); ``transform`` returns the fine-tuned
    network's features. Follow it with :class:`KNNDetector` for anomaly scores; with the
    same parameters the pair scores exactly as the one-stop detector does.

    A 2-D ``X`` is taken as feature vectors and passed through as float32, like the
    detector's feature-vector path.

    Parameters
    ----------
    backbone, weights, frozen_stages, epochs, batch_size, learning_rate, weight_decay, \
temperature, angular, image_size, device, precision, random_state, verbose
        As in :class:`MeanShiftedContrastiveDetector`.

    Attributes
    ----------
    detector_ : MeanShiftedContrastiveDetector
        The fitted network and its preprocessing (``encoder_``, ``backbone_spec_``,
        ``image_size_``, ``versions_``).
    center_ : ndarray of shape (n_features_out,)
        Centre of the pretrained training features.
    loss_curve_ : list of float
        Mean loss of each fine-tuning epoch.
    input_shape_ : tuple
        Shape of one sample seen in ``fit``.
    n_features_in_ : int
        ``X.shape[1]`` in ``fit``, as scikit-learn defines it.

    See Also
    --------
    KNNDetector : The kNN scorer on these features.
    MeanShiftedContrastiveDetector : Both steps in one estimator.

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline
    >>> from skmsc import KNNDetector, MeanShiftedFeatures
    >>> pipe = Pipeline(
    ...     [("features", MeanShiftedFeatures("efficientnet_lite0")), ("knn", KNNDetector())],
    ...     memory="cache_dir",
    ... )  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        name: MeanShiftedContrastiveDetector._parameter_constraints[name]
        for name in FEATURE_PARAMS
    }

    def __init__(
        self,
        backbone="resnet152",
        *,
        weights="imagenet",
        frozen_stages="auto",
        epochs=20,
        batch_size=64,
        learning_rate=1e-5,
        weight_decay=5e-5,
        temperature=0.25,
        angular=False,
        image_size=224,
        device="auto",
        precision="auto",
        random_state=None,
        verbose=False,
    ):
        self.backbone = backbone
        self.weights = weights
        self.frozen_stages = frozen_stages
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.angular = angular
        self.image_size = image_size
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fine-tune the backbone on normal images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3]) or (n_samples, n_features)
            Normal images (uint8 0-255 or float in [0, 1]), or feature vectors.
        y : Ignored
            Present for API consistency.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        params = {name: getattr(self, name) for name in FEATURE_PARAMS}
        # n_neighbors=1: the detector's own kNN is not used here, and 1 allows 2 samples.
        detector = MeanShiftedContrastiveDetector(**params, n_neighbors=1, knn_algorithm="exact")
        detector.fit(X)
        self.detector_ = detector
        self.center_ = detector.center_
        self.loss_curve_ = detector.loss_curve_
        self.input_shape_ = detector.input_shape_
        if hasattr(detector, "n_features_in_"):  # absent when fitted on image files
            self.n_features_in_ = detector.n_features_in_
        self._n_features_out = detector.train_features_.shape[1]
        return self

    def transform(self, X):
        """Fine-tuned unit-norm features of images ``X``.

        Parameters
        ----------
        X : array-like
            Images (or feature vectors) shaped like the training data.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out), float32
        """
        check_is_fitted(self)
        return self.detector_._features(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # features are always float32
        return tags
