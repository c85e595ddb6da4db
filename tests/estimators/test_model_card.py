"""Issue #24: the estimators' public surface for front ends: ``model_card()`` (what
``skmsc info`` prints), ``check_params()``, ``parameter_constraints()`` and
``current_offset()``."""

import json

import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skmsc import KNNDetector, MeanShiftedContrastiveDetector, MeanShiftedFeatures
from skmsc.nn.backbones import build_backbone
from skmsc.persistence import load

COMMON = ["class", "skmsc_version", "training_source", "n_samples_fit", "fit_started",
          "fit_seconds"]
NETWORK = ["backbone", "weights", "weights_file", "image_size", "input_shape", "n_features",
           "epochs", "epochs_run", "best_epoch", "loss_curve", "early_stopping",
           "validation_scores", "device", "precision"]
KNN = ["n_neighbors", "knn_algorithm", "n_gallery", "contamination",
       "contamination_fraction", "offset"]
KEYS = {
    MeanShiftedContrastiveDetector: COMMON + NETWORK + KNN + ["reference_patches", "versions"],
    MeanShiftedFeatures: COMMON + NETWORK + ["versions"],
    KNNDetector: COMMON + KNN + ["versions"],
}


def _check_card(card: dict, est) -> None:
    assert list(card) == KEYS[type(est)]
    assert json.loads(json.dumps(card, allow_nan=False)) == card  # plain values only
    assert card["class"] == type(est).__name__
    assert card["versions"] == est.versions_
    assert card["skmsc_version"] == est.versions_["skmsc"]
    for key in ("training_source", "n_samples_fit", "fit_started", "fit_seconds"):
        assert card[key] == getattr(est, key + "_"), key
    if "backbone" in card:
        assert card["backbone"] == (None if est.backbone_spec_ is None
                                    else est.backbone_spec_.name)
        assert card["image_size"] == est.image_size_
        assert card["epochs"] == est.epochs and card["epochs_run"] == len(est.loss_curve_)
        assert card["best_epoch"] == est.best_epoch_
        assert card["loss_curve"] == pytest.approx(est.loss_curve_)
        assert card["validation_scores"] == est.validation_scores_
        assert card["device"] == str(est.device_) and card["precision"] == est.precision_
        assert card["n_features"] == len(est.center_)
    if "offset" in card:
        assert card["offset"] == est.offset_
        assert card["contamination_fraction"] == est.contamination_
        assert card["contamination"] == est.contamination
        assert card["n_neighbors"] == est.n_neighbors
        assert card["knn_algorithm"] == est.knn_algorithm_
        assert card["n_gallery"] == len(est.gallery_)
    if "reference_patches" in card:
        patches = est.reference_patches_
        assert card["reference_patches"] == (None if patches is None else list(patches.shape))


def test_card_of_an_image_detector_and_of_its_loaded_copy(fitted_lite0, tmp_path):
    card = fitted_lite0.model_card()
    _check_card(card, fitted_lite0)
    assert card["weights"] == "imagenet" and card["weights_file"] is None
    assert card["backbone"] == "efficientnet_lite0" and card["input_shape"] == [8, 8]
    assert card["epochs_run"] == 1 and len(card["loss_curve"]) == 1
    # 48 training images of 32 px: Lite0's stride-8 stage, a 4 x 4 grid of 40 channels.
    assert card["reference_patches"] == [48 * 16, 40]
    loaded = load(fitted_lite0.save(tmp_path / "m"))
    assert loaded.model_card() == card
    _check_card(loaded.model_card(), loaded)


@pytest.mark.parametrize("cls", [MeanShiftedFeatures, KNNDetector,
                                 MeanShiftedContrastiveDetector])
def test_card_of_each_estimator_on_feature_vectors(cls, tmp_path):
    est = cls().fit(np.random.default_rng(0).normal(size=(30, 4)))
    card = est.model_card()
    _check_card(card, est)
    if "backbone" in card:  # no network: no backbone, no weights, no patches
        assert card["backbone"] is card["weights"] is card["weights_file"] is None
        assert card.get("reference_patches", None) is None
    assert load(est.save(tmp_path / "m")).model_card() == card


def test_card_names_the_starting_weights(digits, tmp_path):
    X = digits[0][:12]
    random = MeanShiftedContrastiveDetector(**FAST, weights=None, epochs=0).fit(X)
    assert random.model_card()["weights"] == "random"
    weights = tmp_path / "w.pt"
    torch.save(build_backbone("efficientnet_lite0", weights=None)[0].state_dict(), weights)
    from_file = MeanShiftedContrastiveDetector(**FAST, weights=weights, epochs=0).fit(X)
    card = from_file.model_card()
    assert card["weights"] == "file" and card["weights_file"] == str(weights)


def test_card_follows_the_threshold_and_needs_a_fit():
    det = KNNDetector().fit(np.random.default_rng(0).normal(size=(50, 2)))
    card = det.set_threshold(0.2).model_card()
    assert card["contamination"] == 0.2 and card["offset"] == det.offset_
    with pytest.raises(NotFittedError):
        KNNDetector().model_card()


def test_check_params_reports_what_fit_would():
    det = MeanShiftedContrastiveDetector(epochs=-1)
    with pytest.raises(InvalidParameterError, match="'epochs' parameter"):
        det.check_params()
    with pytest.raises(InvalidParameterError, match="not a bool"):
        KNNDetector(n_neighbors=True).check_params()
    det = MeanShiftedContrastiveDetector()
    assert det.check_params() is det and det.get_params() == MeanShiftedContrastiveDetector(
    ).get_params()


def test_parameter_constraints_are_a_copy():
    constraints = MeanShiftedContrastiveDetector.parameter_constraints()
    assert set(constraints) == set(MeanShiftedContrastiveDetector().get_params())
    constraints["epochs"].clear()
    assert MeanShiftedContrastiveDetector.parameter_constraints()["epochs"]


def test_current_offset_checks_the_contamination():
    det = KNNDetector().fit(np.random.default_rng(0).normal(size=(50, 2)))
    assert det.current_offset() == det.offset_
    det.set_params(contamination=0.3)
    with pytest.raises(ValueError, match="set_threshold"):
        det.current_offset()
    assert det.set_threshold().current_offset() == det.offset_
