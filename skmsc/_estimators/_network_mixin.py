"""The network half of the estimators: its parameters, its checks of ``X``, its state.

:class:`MeanShiftedContrastiveDetector` and :class:`MeanShiftedFeatures` share this
mixin, so a new network parameter is added here once (and in their ``__init__``). All
torch work is done by :class:`skmsc.nn.MeanShiftedNetwork`; this module only decides
*what* to run and stores the results as fitted attributes.
"""

from __future__ import annotations

import copy
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .. import persistence
from .._checks import (
    DivergenceError,
    check_fitted_sample_shape,
    check_image_array,
    check_input_container,
    explained_non_finite,
)
from ..data._batches import ArrayBatches, file_batches
from ..nn import FineTuning, MeanShiftedNetwork
from ..nn._eta import FitTimer
from ..nn._runtime import PRECISIONS, loadable_device, parse_device, resolve_device
from ..nn.backbones import BACKBONES
from ._base import check_training_set, feature_copy, validated_fit_array
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
from ._state import fits_aside

#: Smallest ``image_size``: below it the backbones' strides leave no spatial extent.
MIN_IMAGE_SIZE = 16
#: Largest ``image_size``: a 4096-pixel square is 200 MB of float32 input per image
#: already; a saved model asking for more is refused rather than trusted.
MAX_IMAGE_SIZE = 4096
# What precision_ may hold: "auto" resolved on a device.
RESOLVED_PRECISIONS = frozenset(PRECISIONS) - {"auto"}

#: Constraints of the parameters that shape the features (shared by both estimators).
NETWORK_PARAMETER_CONSTRAINTS: dict = {
    "backbone": [StrOptions(set(BACKBONES))],
    "weights": [StrOptions({"imagenet"}), str, os.PathLike, None],
    "frozen_stages": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
    "epochs": [Interval(Integral, 0, None, closed="left")],
    "batch_size": [Interval(Integral, 2, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "temperature": [Interval(Real, 0, None, closed="neither")],
    "angular": ["boolean"],
    "image_size": [Interval(Integral, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, closed="both")],
    "device": [str, torch.device],
    "precision": [StrOptions(set(PRECISIONS))],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}
_ENCODER_PREFIX = "encoder."


def _saved_input_shape(fitted: dict):
    """``input_shape_`` from a save: ``None`` (files), ``(d,)`` or an image shape."""
    shape = saved_value(fitted, "input_shape_")
    if shape is None:
        return None
    require(isinstance(shape, list) and len(shape) in (1, 2, 3), "input_shape_",
            f"expected None or a list of 1 to 3 sizes, got {shape!r}")
    sizes = tuple(saved_int(fitted, "input_shape_", 1, 2**24, value=v) for v in shape)
    require(len(sizes) != 3 or sizes[2] == 3, "input_shape_",
            f"images have 3 channels, got {sizes}")
    return sizes


def _restored_precision(saved) -> dict | None:
    """A saved ``precision_`` checked: two keys, each a resolved precision name."""
    if saved is None:
        return None
    persistence.check(
        isinstance(saved, dict) and set(saved) == {"fine_tuning", "features"}
        and all(value in RESOLVED_PRECISIONS for value in saved.values()),
        f"precision_ {saved!r} is not {{'fine_tuning': ..., 'features': ...}} with values "
        f"in {sorted(RESOLVED_PRECISIONS)}",
    )
    return dict(saved)


def _restore_center(est, tensors: dict) -> np.ndarray:
    persistence.check("center_" in tensors, "tensor center_ is missing")
    n_features = est._n_features_out_of(tensors)
    persistence.check(tensors["center_"].shape == (n_features,),
                      "center_ does not match train_features_")
    return saved_array(tensors, "center_", ndim=1, shape=(n_features,))


def _restore_input_shape(est, fitted: dict):
    shape = _saved_input_shape(fitted)
    n_features_in = getattr(est, "n_features_in_", None)
    if shape is not None:
        require(n_features_in == shape[0], "n_features_in_",
                f"{n_features_in} does not match input_shape_ {shape} (X.shape[1] in fit)")
    else:
        require(not hasattr(est, "n_features_in_"), "n_features_in_",
                "a model fitted on image files has none")
    return shape


def _restore_image_size(est, fitted: dict) -> int:
    size = saved_int(fitted, "image_size_", low=MIN_IMAGE_SIZE, high=MAX_IMAGE_SIZE)
    require(size == est.image_size, "image_size_",
            f"{size} differs from the parameter image_size={est.image_size}")
    return size


def _restore_losses(est, fitted: dict) -> list:
    losses = saved_value(fitted, "loss_curve_")
    require(isinstance(losses, list) and len(losses) <= est.epochs, "loss_curve_",
            f"expected a list of at most epochs={est.epochs} numbers")
    return [saved_float(fitted, "loss_curve_", value=v) for v in losses]


def _restore_validation(est, fitted: dict):
    scores = fitted["validation_scores_"]
    require(scores is None or (isinstance(scores, list)
                               and len(scores) == len(est.loss_curve_) + 1),
            "validation_scores_", "expected None or one score per epoch, and epoch 0")
    return None if scores is None else [
        saved_float(fitted, "validation_scores_", 0.0, 1.0, value=v) for v in scores]


def _restore_best_epoch(est, fitted: dict) -> int:
    n_epochs = len(est.loss_curve_)
    best = saved_int(fitted, "best_epoch_", 0, n_epochs)
    require(est.validation_scores_ is not None or best == n_epochs, "best_epoch_",
            "without the safeguard the last epoch is kept")
    return best


def _restore_device(fitted: dict) -> torch.device:
    try:
        return loadable_device(parse_device(saved_str(fitted, "device_")))
    except ValueError as exc:
        raise SavedFieldError(f"Saved fitted attribute 'device_' is invalid: {exc}") from None


def _saved_weights(tensors: dict) -> dict:
    return {
        key[len(_ENCODER_PREFIX):]: torch.from_numpy(value.copy())
        for key, value in tensors.items() if key.startswith(_ENCODER_PREFIX)
    }


def _restore_backbone(est, fitted: dict, tensors: dict):
    """The registry's entry of the saved backbone name; ``None`` for a feature-vector fit."""
    check = persistence.check
    backbone = saved_value(fitted, "backbone")
    n_features = est._n_features_out_of(tensors)
    if backbone is None:
        check(not any(key.startswith(_ENCODER_PREFIX) for key in tensors)
              and est.input_shape_ is not None and len(est.input_shape_) == 1,
              "feature-vector detector with network weights or image shape")
        check(est.input_shape_ == (n_features,), "input_shape_ does not match the features")
        return None
    check(backbone in BACKBONES, f"unknown backbone {backbone!r}")
    check(est.input_shape_ is None or len(est.input_shape_) in (2, 3),
          "an image model with the input_shape_ of feature vectors")
    spec = BACKBONES[backbone]
    check(n_features == spec.feature_dim, "feature size does not match the backbone")
    require(backbone == est.backbone, "backbone",
            f"{backbone!r} differs from the parameter backbone={est.backbone!r}")
    return spec


def _restore_encoder(est, tensors: dict):
    if est.backbone_spec_ is None:
        return None
    weights = _saved_weights(tensors)
    for key, value in weights.items():
        require(bool(torch.isfinite(value).all()) if value.is_floating_point() else True,
                _ENCODER_PREFIX + key, "the network weight holds NaN or infinity")
    try:
        network = est._network_from(weights)
    except RuntimeError as exc:
        raise ValueError(
            f"The saved network weights do not fit backbone {est.backbone_spec_.name!r}: "
            f"{exc}"
        ) from exc
    return network.encoder


def _restore_precision(est, fitted: dict) -> dict:
    if est.encoder_ is None:
        return {"fine_tuning": "float32", "features": "float32"}
    network = est._network()
    return _restored_precision(fitted.get("precision_")) or {
        "fine_tuning": network.precision(est.precision, training=True),
        "features": network.precision(est.precision, training=False),
    }


def fit_seeds(random_state) -> np.ndarray:
    """Four seeds (weights, augmentation, data order, kNN index) from ``random_state``.

    ``None`` draws fresh entropy from the OS rather than numpy's global generator (which
    ``check_random_state(None)`` would advance), so fitting never touches global state.
    """
    if random_state is None:
        return np.random.default_rng().integers(0, 2**31 - 1, size=4)
    return check_random_state(random_state).randint(0, 2**31 - 1, size=4)


class NetworkEstimatorMixin:
    """Fits the network on images (or passes 2-D feature vectors through) and extracts."""

    # ------------------------------------------------------------------ fit
    def _fit_source(self, X, min_neighbors: int, y=None):
        """``X`` checked for ``fit`` as a batch source; records what scoring checks against.

        ``y`` is only looked at to warn when it marks training rows as anomalies."""
        source = file_batches(X)
        if source is None:
            source = ArrayBatches(validated_fit_array(self, X, allow_nd=True))
        else:
            # Files have no common shape: there is no n_features_in_ to record, and a
            # stale one from an earlier array fit must not constrain scoring.
            self.__dict__.pop("n_features_in_", None)
        check_training_set(self, len(source), y, min_neighbors)
        if source.sample_shape is not None and len(source.sample_shape) > 1:
            check_image_array(source.X)
        self.input_shape_ = source.sample_shape
        return source

    def _fit_network(self, source, seeds) -> np.ndarray:
        """Centre and fine-tune on ``source``; returns the fine-tuned training features."""
        if source.sample_shape is not None and len(source.sample_shape) == 1:
            # Feature vectors: no network, the detector is the kNN scorer alone.
            features = feature_copy(source.X)
            self.encoder_, self.backbone_spec_, self.device_ = None, None, torch.device("cpu")
            self.precision_ = {"fine_tuning": "float32", "features": "float32"}
            self.center_ = features.mean(axis=0)
            self.loss_curve_ = []
            self.validation_scores_, self.best_epoch_ = None, 0
            self.image_size_ = self.image_size
            return features
        network = MeanShiftedNetwork.build(
            self.backbone, weights=self.weights, frozen_stages=self.frozen_stages,
            image_size=self.image_size, device=self.device, seed=int(seeds[0]),
        )
        precision = {
            "fine_tuning": network.precision(self.precision, training=True),
            "features": network.precision(self.precision, training=False),
        }
        timer = FitTimer(
            n_images=len(source), epochs=self.epochs, batch_size=self.batch_size,
            early_stopping=self.early_stopping, backbone=self.backbone,
            image_size=self.image_size, device=network.device,
        )  # warns with an estimate when the fit will take more than a few minutes
        run = dict(batch_size=self.batch_size, verbose=self.verbose, timer=timer)
        # The centre comes from the pretrained network in eval mode, before training.
        pretrained = network.extract(source, precision=precision["features"], **run)
        center = network.mean_shift(pretrained, angular=self.angular)
        if not np.isfinite(center).all():
            raise DivergenceError(
                "The centre of the pretrained features is not finite"
                + (" (angular=True divides it by its length, and the features' mean is "
                   "near zero: use angular=False)" if self.angular else "")
                + ". Check the backbone's weights."
            )
        tuning = FineTuning(
            epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, temperature=self.temperature,
            angular=self.angular, seed=(int(seeds[1]), int(seeds[2])),
            precision=precision["fine_tuning"], features_precision=precision["features"],
            early_stopping=self.early_stopping and self.epochs > 0,
            validation_fraction=self.validation_fraction,
            n_iter_no_change=self.n_iter_no_change, verbose=self.verbose,
        )
        loss_curve, features, validation_scores, best_epoch = network.fine_tune_and_extract(
            source, pretrained, center, tuning, timer=timer)
        del pretrained
        self.validation_scores_ = validation_scores
        self.best_epoch_ = best_epoch
        self.encoder_ = network.encoder
        self.backbone_spec_ = network.spec
        self.image_size_ = network.image_size
        self.device_ = network.device
        self.precision_ = precision
        self.center_ = center
        self.loss_curve_ = loss_curve
        return features

    # ------------------------------------------------------------------ transform / score
    def _validated(self, X):
        """``X`` checked against the fit, as a batch source (array or files)."""
        check_is_fitted(self)
        source = file_batches(X)
        if source is not None:
            if self.encoder_ is None:
                raise ValueError(
                    "This detector was fitted on feature vectors, so it cannot score image "
                    "files. Fit it on images (an array or files) to score images."
                )
            return source
        check_input_container(X)
        raw = X  # a DataFrame keeps its column names for validate_data below
        with explained_non_finite(X):
            X = check_array(X, dtype="numeric", allow_nd=True, estimator=self,
                            input_name="X")
        check_fitted_sample_shape(X, self.input_shape_, has_network=self.encoder_ is not None)
        if self.encoder_ is None:
            validate_data(self, raw, reset=False, skip_check_array=True)
        else:
            # Images of any size are resized as files are: n_features_in_ (the training
            # height) does not constrain them.
            check_image_array(X)
        return ArrayBatches(X)

    @fits_aside  # device_ and the network move together
    def set_device(self, device):
        """Move the fitted network to ``device`` for scoring, without refitting.

        Parameters
        ----------
        device : str or torch.device
            ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; an absent device
            is a ``ValueError`` or ``RuntimeError`` naming it.

        Returns
        -------
        self : object
            With ``device_`` set; the ``device`` parameter is unchanged (it is what ``fit``
            uses).

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import MeanShiftedContrastiveDetector
        >>> det = MeanShiftedContrastiveDetector(contamination=0.1).fit(
        ...     np.random.default_rng(0).normal(size=(20, 3)))
        >>> str(det.set_device("cpu").device_)
        'cpu'
        """
        check_is_fitted(self)
        target = torch.device(resolve_device(device))
        if self.encoder_ is not None:
            # A moved copy: the fitted network is never changed in place (fits_aside).
            self.encoder_ = copy.deepcopy(self.encoder_).to(target)
        self.device_ = target
        return self

    def _card_entries(self) -> dict:
        """The network's entries of the model card (see ``model_card``)."""
        spec, weights = self.backbone_spec_, self.weights
        if spec is None:  # fitted on feature vectors: no network
            kind = None
        else:
            kind = "random" if weights is None else (
                "imagenet" if weights == "imagenet" else "file")
        return {
            "backbone": None if spec is None else spec.name,
            "weights": kind,
            "weights_file": os.fspath(weights) if kind == "file" else None,
            "image_size": int(self.image_size_),
            "input_shape": (None if self.input_shape_ is None
                            else [int(v) for v in self.input_shape_]),
            "n_features": int(len(self.center_)),
            "epochs": int(self.epochs),
            "epochs_run": len(self.loss_curve_),
            "best_epoch": int(self.best_epoch_),
            "loss_curve": [float(v) for v in self.loss_curve_],
            "early_stopping": bool(self.early_stopping),
            "validation_scores": (None if self.validation_scores_ is None
                                  else [float(v) for v in self.validation_scores_]),
            "device": str(self.device_),
            "precision": dict(self.precision_),
            **super()._card_entries(),
        }

    def _network(self) -> MeanShiftedNetwork:
        return MeanShiftedNetwork(self.encoder_, self.backbone_spec_, self.image_size_,
                                  self.device_)

    def _extract(self, source) -> np.ndarray:
        """Features of a validated batch source (see ``_validated``)."""
        if self.encoder_ is None:
            # A new array: transform's output must not be a view of the caller's data.
            return feature_copy(source.X)
        # Resolved here, not read from precision_: a loaded model may run on another
        # device than the one it was fitted on.
        return self._network().extract(source, batch_size=self.batch_size,
                                       precision=self.precision, verbose=self.verbose)

    # ------------------------------------------------------------------ pickling / saving
    def __getstate__(self):
        state = dict(super().__getstate__())
        encoder = state.get("encoder_")
        if encoder is not None:
            # Tensors go to the CPU so a model fitted on a GPU loads anywhere.
            state["encoder_"] = self._network().state_dict()
        if "device_" in state:
            state["device_"] = str(state["device_"])
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "device_" not in state:
            return
        self.device_ = loadable_device(torch.device(state["device_"]))
        if self.backbone_spec_ is not None:
            # The registry's entry, which carries the code to build the network.
            self.backbone_spec_ = BACKBONES[self.backbone_spec_.name]
        if isinstance(self.encoder_, dict):
            self.encoder_ = self._network_from(self.encoder_).encoder

    def _network_from(self, weights: dict) -> MeanShiftedNetwork:
        return MeanShiftedNetwork.from_state_dict(
            self.backbone_spec_.name, weights, image_size=self.image_size_, device=self.device_
        )

    _FITTED_FIELDS = (
        FittedField("center_", lambda est, fitted, tensors: _restore_center(est, tensors),
                    tensor=True),
        FittedField("input_shape_", lambda est, fitted, tensors: _restore_input_shape(
            est, fitted), save=lambda est: (None if est.input_shape_ is None
                                            else list(est.input_shape_))),
        FittedField("image_size_", lambda est, fitted, tensors: _restore_image_size(
            est, fitted), save=lambda est: int(est.image_size_)),
        FittedField("loss_curve_", lambda est, fitted, tensors: _restore_losses(est, fitted),
                    save=lambda est: [float(v) for v in est.loss_curve_]),
        # Saved before the safeguard existed: no scores, and the last epoch was kept.
        FittedField("validation_scores_", lambda est, fitted, tensors: _restore_validation(
            est, fitted), save=lambda est: (None if est.validation_scores_ is None else [
                float(v) for v in est.validation_scores_]), older=lambda est: None),
        FittedField("best_epoch_", lambda est, fitted, tensors: _restore_best_epoch(
            est, fitted), save=lambda est: int(est.best_epoch_),
            older=lambda est: len(est.loss_curve_)),
        FittedField("device_", lambda est, fitted, tensors: _restore_device(fitted),
                    save=lambda est: str(est.device_)),
        FittedField("backbone_spec_", lambda est, fitted, tensors: _restore_backbone(
            est, fitted, tensors), key="backbone", save=lambda est: (
                None if est.backbone_spec_ is None else est.backbone_spec_.name)),
        FittedField("encoder_", lambda est, fitted, tensors: _restore_encoder(est, tensors),
                    tensor=True, save=lambda est: (OMIT if est.encoder_ is None else {
                        _ENCODER_PREFIX + key: value.contiguous().numpy()
                        for key, value in est._network().state_dict().items()})),
        # Saves from before precision_ was kept: what the parameter means on the device
        # loaded to (the best that is known).
        FittedField("precision_", lambda est, fitted, tensors: _restore_precision(
            est, fitted), save=lambda est: dict(est.precision_)),
    )

    def _n_features_out_of(self, tensors: dict) -> int:
        return tensors["train_features_"].shape[1]
