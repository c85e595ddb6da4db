"""The network half of the estimators: its parameters, its checks of ``X``, its state.

:class:`MeanShiftedContrastiveDetector` and :class:`MeanShiftedFeatures` share this
mixin, so a new network parameter is added here once (and in their ``__init__``). All
torch work is done by :class:`skmsc.nn.MeanShiftedNetwork`; this module only decides
*what* to run and stores the results as fitted attributes.
"""

from __future__ import annotations

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
    check_enough_samples,
    check_feature_range,
    check_fitted_sample_shape,
    check_image_array,
    check_input_container,
    explained_non_finite,
    warn_if_labelled_anomalies,
)
from ..data._batches import ArrayBatches, file_batches
from ..nn import MeanShiftedNetwork
from ..nn._eta import FitTimer
from ..nn._runtime import PRECISIONS, loadable_device, parse_device
from ..nn.backbones import BACKBONES
from ._saved_fields import (
    SavedFieldError,
    require,
    saved_array,
    saved_float,
    saved_int,
    saved_str,
    saved_value,
)

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
            check_input_container(X)
            with explained_non_finite(X):
                X = validate_data(self, X, dtype="numeric", allow_nd=True,
                                  ensure_min_samples=1)
            source = ArrayBatches(X)
        else:
            # Files have no common shape: there is no n_features_in_ to record, and a
            # stale one from an earlier array fit must not constrain scoring.
            self.__dict__.pop("n_features_in_", None)
        warn_if_labelled_anomalies(y, len(source), type(self).__name__)
        check_enough_samples(len(source), min_neighbors)
        if source.sample_shape is not None and len(source.sample_shape) > 1:
            check_image_array(source.X)
        self.input_shape_ = source.sample_shape
        return source

    def _fit_network(self, source, seeds) -> np.ndarray:
        """Centre and fine-tune on ``source``; returns the fine-tuned training features."""
        if source.sample_shape is not None and len(source.sample_shape) == 1:
            # Feature vectors: no network, the detector is the kNN scorer alone. A copy of
            # the caller's data, never a view of it (also of a float32 memmap).
            features = np.array(source.X, dtype=np.float32, copy=True)
            check_feature_range(features)
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
        loss_curve, features, validation_scores, best_epoch = network.fine_tune_and_extract(
            source, pretrained, center, epochs=self.epochs, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, temperature=self.temperature,
            angular=self.angular, seed=(int(seeds[1]), int(seeds[2])),
            precision=precision["fine_tuning"], features_precision=precision["features"],
            early_stopping=self.early_stopping and self.epochs > 0,
            validation_fraction=self.validation_fraction,
            n_iter_no_change=self.n_iter_no_change, **run,
        )
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

    def _network(self) -> MeanShiftedNetwork:
        return MeanShiftedNetwork(self.encoder_, self.backbone_spec_, self.image_size_,
                                  self.device_)

    def _extract(self, source) -> np.ndarray:
        """Features of a validated batch source (see ``_validated``)."""
        if self.encoder_ is None:
            # A new array: transform's output must not be a view of the caller's data.
            features = np.array(source.X, dtype=np.float32, copy=True)
            check_feature_range(features)
            return features
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

    def _saved_state(self) -> tuple[dict, dict]:
        fitted, tensors = super()._saved_state()
        fitted.update(
            image_size_=int(self.image_size_),
            loss_curve_=[float(v) for v in self.loss_curve_],
            validation_scores_=(None if self.validation_scores_ is None
                                else [float(v) for v in self.validation_scores_]),
            best_epoch_=int(self.best_epoch_),
            input_shape_=None if self.input_shape_ is None else list(self.input_shape_),
            device_=str(self.device_),
            precision_=dict(self.precision_),
            backbone=None if self.backbone_spec_ is None else self.backbone_spec_.name,
        )
        tensors["center_"] = self.center_
        if self.encoder_ is not None:
            for key, value in self._network().state_dict().items():
                tensors[_ENCODER_PREFIX + key] = value.contiguous().numpy()
        return fitted, tensors

    def _restore_state(self, fitted: dict, tensors: dict) -> None:
        super()._restore_state(fitted, tensors)
        check = persistence.check
        check("center_" in tensors, "tensor center_ is missing")
        n_features = self._n_features_out_of(tensors)
        check(tensors["center_"].shape == (n_features,), "center_ does not match train_features_")
        center = saved_array(tensors, "center_", ndim=1, shape=(n_features,))
        self.input_shape_ = _saved_input_shape(fitted)
        if self.input_shape_ is not None:
            require(getattr(self, "n_features_in_", None) == self.input_shape_[0],
                    "n_features_in_", f"{getattr(self, 'n_features_in_', None)} does not match "
                    f"input_shape_ {self.input_shape_} (X.shape[1] in fit)")
        else:
            require(not hasattr(self, "n_features_in_"), "n_features_in_",
                    "a model fitted on image files has none")
        self.image_size_ = saved_int(fitted, "image_size_", low=MIN_IMAGE_SIZE,
                                     high=MAX_IMAGE_SIZE)
        require(self.image_size_ == self.image_size, "image_size_",
                f"{self.image_size_} differs from the parameter image_size={self.image_size}")
        losses = saved_value(fitted, "loss_curve_")
        require(isinstance(losses, list) and len(losses) <= self.epochs, "loss_curve_",
                f"expected a list of at most epochs={self.epochs} numbers")
        self.loss_curve_ = [saved_float(fitted, "loss_curve_", value=v) for v in losses]
        # Saved before the safeguard existed: the last epoch was kept.
        scores = fitted.get("validation_scores_")
        require(scores is None or (isinstance(scores, list)
                                   and len(scores) == len(losses) + 1),
                "validation_scores_", "expected None or one score per epoch, and epoch 0")
        self.validation_scores_ = None if scores is None else [
            saved_float(fitted, "validation_scores_", 0.0, 1.0, value=v) for v in scores]
        self.best_epoch_ = saved_int(fitted, "best_epoch_", 0, len(losses),
                                     value=fitted.get("best_epoch_", len(losses)))
        require(scores is not None or self.best_epoch_ == len(losses), "best_epoch_",
                "without the safeguard the last epoch is kept")
        self.center_ = center
        try:
            self.device_ = loadable_device(parse_device(saved_str(fitted, "device_")))
        except ValueError as exc:
            raise SavedFieldError(f"Saved fitted attribute 'device_' is invalid: {exc}") from None
        weights = {
            key[len(_ENCODER_PREFIX):]: torch.from_numpy(value.copy())
            for key, value in tensors.items() if key.startswith(_ENCODER_PREFIX)
        }
        backbone = saved_value(fitted, "backbone")
        if backbone is None:
            check(not weights and self.input_shape_ is not None
                  and len(self.input_shape_) == 1,
                  "feature-vector detector with network weights or image shape")
            check(self.input_shape_ == (n_features,), "input_shape_ does not match the features")
            self.encoder_, self.backbone_spec_ = None, None
            self.precision_ = {"fine_tuning": "float32", "features": "float32"}
            return
        check(backbone in BACKBONES, f"unknown backbone {backbone!r}")
        check(self.input_shape_ is None or len(self.input_shape_) in (2, 3),
              "an image model with the input_shape_ of feature vectors")
        self.backbone_spec_ = BACKBONES[backbone]
        check(n_features == self.backbone_spec_.feature_dim,
              "feature size does not match the backbone")
        require(backbone == self.backbone, "backbone",
                f"{backbone!r} differs from the parameter backbone={self.backbone!r}")
        for key, value in weights.items():
            require(bool(torch.isfinite(value).all()) if value.is_floating_point() else True,
                    _ENCODER_PREFIX + key, "the network weight holds NaN or infinity")
        try:
            network = self._network_from(weights)
        except RuntimeError as exc:
            raise ValueError(
                f"The saved network weights do not fit backbone {backbone!r}: {exc}"
            ) from exc
        self.encoder_ = network.encoder
        # What fit ran in, as saved; saves from before precision_ was kept: what the
        # parameter means on the device loaded to (the best that is known).
        self.precision_ = _restored_precision(fitted.get("precision_")) or {
            "fine_tuning": network.precision(self.precision, training=True),
            "features": network.precision(self.precision, training=False),
        }

    def _n_features_out_of(self, tensors: dict) -> int:
        return tensors["train_features_"].shape[1]
