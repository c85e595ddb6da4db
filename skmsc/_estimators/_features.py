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

from ._base import SkmscEstimatorMixin, store_params
from ._network_mixin import NETWORK_PARAMETER_CONSTRAINTS, NetworkEstimatorMixin, fit_seeds
from ._saved_fields import FittedField, require, saved_int
from ._state import fits_aside, snapshot

__all__ = ["MeanShiftedFeatures"]


class MeanShiftedFeatures(
    NetworkEstimatorMixin, SkmscEstimatorMixin, ClassNamePrefixFeaturesOutMixin,
    TransformerMixin, BaseEstimator,
):
    """Images to fine-tuned, unit-norm features (Reiss & Hoshen, AAAI 2023).

    ``fit`` runs exactly the fine-tuning of :class:`MeanShiftedContrastiveDetector` (the
    same :class:`skmsc.nn.MeanShiftedNetwork` calls, the same seeds for the same
    ``random_state``); ``transform`` returns the fine-tuned
    network's features. Follow it with :class:`KNNDetector` for anomaly scores; with the
    same parameters the pair scores exactly as the one-stop detector does.

    A 2-D ``X`` is taken as feature vectors and passed through as float32, like the
    detector's feature-vector path.

    Parameters
    ----------
    backbone, weights, frozen_stages, epochs, batch_size, learning_rate, weight_decay, \
temperature, angular, image_size, device, precision, early_stopping, validation_fraction, \
n_iter_no_change, random_state, verbose
        As in :class:`MeanShiftedContrastiveDetector`.

    Attributes
    ----------
    encoder_ : torch.nn.Module or None
        The fine-tuned network (``None`` for feature-vector input).
    backbone_spec_ : BackboneSpec or None
        The backbone's preprocessing (mean, std, crop, interpolation).
    image_size_ : int
        Side of the square the network sees.
    device_ : torch.device
        Device the network ran on.
    precision_ : dict
        Arithmetic the network used in ``fit`` (as the detector's ``precision_``).
    versions_ : dict
        Versions of skmsc and its main dependencies at fit time.
    center_ : ndarray of shape (n_features_out,)
        Centre of the pretrained training features.
    loss_curve_ : list of float
        Mean loss of each fine-tuning epoch (fewer than ``epochs`` if early stopping
        ended training).
    validation_scores_ : list of float or None
        With ``early_stopping``: the held-out ROC-AUC (normal against synthetic
        anomalies) of the pretrained network (index 0) and after each epoch; else
        ``None``.
    best_epoch_ : int
        The epoch whose network the detector keeps: 0 is the pretrained network.
    input_shape_ : tuple or None
        Shape of one sample seen in ``fit`` (``None`` when fitted on image files);
        images of any size are transformed, resized as in ``fit``.
    n_features_in_ : int
        ``X.shape[1]`` in ``fit``, as scikit-learn defines it.
    training_source_, n_samples_fit_, fit_started_, fit_seconds_
        What ``fit`` got, how many images, when and how long (as the detector's).

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
        **NETWORK_PARAMETER_CONSTRAINTS
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
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=3,
        random_state=None,
        verbose=False,
    ):
        store_params(self, locals())

    @_fit_context(prefer_skip_nested_validation=True)
    @fits_aside
    def fit(self, X, y=None):
        """Fine-tune the backbone on normal images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3]) or (n_samples, n_features)
            Normal images (uint8 0-255 or float in [0, 1]), or feature vectors.
        y : array-like of shape (n_samples,), default=None
            Not used for training: every row of ``X`` is trained on. If it marks rows as
            anomalies (labels 0 or -1 beside 1), an
            :class:`~skmsc.AnomaliesInTrainingWarning` says so.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        # All or nothing (see fits_aside).
        clock = self._fit_clock()
        # Two samples at least, as the detector with n_neighbors=1 needs.
        source = self._fit_source(X, 1, y)
        features = self._fit_network(source, fit_seeds(self.random_state))
        self._n_features_out = features.shape[1]
        self._record_fit(clock, source.describe(), len(source))
        return self

    def transform(self, X):
        """Fine-tuned unit-norm features of images ``X``.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Images of any size, or feature vectors shaped like the training data.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out), float32
        """
        model = snapshot(self)  # one consistent state, even while another thread fits
        return model._extract(model._validated(X))

    _FITTED_FIELDS = (
        FittedField("_n_features_out", lambda est, fitted, tensors: _restore_n_features_out(
            est, fitted), key="n_features_out", save=lambda est: int(est._n_features_out)),
    )

    def _n_features_out_of(self, tensors: dict) -> int:
        return len(tensors["center_"]) if "center_" in tensors else -1

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # features are always float32
        return tags


def _restore_n_features_out(est, fitted: dict) -> int:
    n_features_out = saved_int(fitted, "n_features_out", low=1)
    require(n_features_out == len(est.center_), "n_features_out",
            f"{n_features_out} does not match center_ ({len(est.center_)})")
    return n_features_out
