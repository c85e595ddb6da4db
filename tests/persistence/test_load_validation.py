"""load() trusts nothing: every fitted attribute is checked, with an error naming the field.

Issue #16, item 9. The forgeries below keep the two files consistent with each other
(``saved_models.rebind``), as someone rewriting both would: only the checks of the values
themselves stand between them and a loaded model.
"""

import json

import numpy as np
import pytest
from saved_models import rebind

from skmsc import KNNDetector, MeanShiftedContrastiveDetector
from skmsc.persistence import JSON_NAME, TENSORS_NAME, load

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4))


@pytest.fixture
def feature_model(tmp_path):
    return MeanShiftedContrastiveDetector(random_state=0).fit(X).save(tmp_path / "features")


@pytest.fixture
def image_model(fitted_lite0, tmp_path):
    return fitted_lite0.save(tmp_path / "images")


def _forged(folder, field, value):
    def edit(document, tensors):
        document["fitted"][field] = value

    rebind(folder, edit)
    return folder


@pytest.mark.parametrize("value", ["abc", -5, 0, 3.7, 1e308, 40000, True, None])
def test_image_size(image_model, value):
    """The issue: image_size_ 40000 loaded, and scoring then asked for 12.5 GB."""
    with pytest.raises(ValueError, match="'image_size_'"):
        load(_forged(image_model, "image_size_", value))


@pytest.mark.parametrize("value", ["meta", "banana", 5, "cuda:x"])
def test_device(image_model, value):
    with pytest.raises(ValueError, match="'device_'"):
        load(_forged(image_model, "device_", value))


@pytest.mark.parametrize("field, value", [
    ("n_features_in_", 7), ("n_features_in_", 0), ("n_features_in_", "4"),
    ("versions_", "1.0"), ("versions_", ["skmsc"]), ("versions_", {"skmsc": 1}),
    ("offset_", "-1.5"), ("offset_", True), ("offset_", "inf"),
    ("index_seed", -1), ("index_seed", 2**40), ("knn_algorithm_", "brute"),
    ("input_shape_", "abc"), ("input_shape_", [5]), ("input_shape_", [0]),
    ("loss_curve_", ["a"]), ("best_epoch_", 3), ("validation_scores_", [0.5, 2.0]),
    ("feature_names_in_", ["a", "b"]), ("feature_names_in_", [1, 2, 3, 4]),
])
def test_feature_model_fields(feature_model, field, value):
    with pytest.raises(ValueError, match=field):
        load(_forged(feature_model, field, value))


def test_n_features_in_must_match_the_features_of_a_knn_detector(tmp_path):
    folder = KNNDetector().fit(X).save(tmp_path / "knn")
    with pytest.raises(ValueError, match="'n_features_in_'.*does not match"):
        load(_forged(folder, "n_features_in_", 5))


@pytest.mark.parametrize("field, value", [
    ("input_shape_", [8, 8, 4]), ("loss_curve_", [0.1, 0.2]), ("backbone", "resnet18"),
    ("best_epoch_", -1), ("validation_scores_", [0.5]),
])
def test_image_model_fields(image_model, field, value):
    with pytest.raises(ValueError, match=f"{field}|feature size|backbone"):
        load(_forged(image_model, field, value))


@pytest.mark.parametrize("name", ["train_features_", "center_", "train_scores_",
                                  "encoder.backbone.conv_stem.weight"])
def test_non_finite_tensors(image_model, name):
    def edit(document, tensors):
        tensors[name] = tensors[name].copy()
        tensors[name].flat[0] = np.nan

    rebind(image_model, edit)
    with pytest.raises(ValueError, match=f"'{name}'.*NaN"):
        load(image_model)


def test_nan_in_the_json_is_refused(feature_model):
    """JSON parsers accept NaN; a NaN offset_ made predict call every image normal."""
    text = (feature_model / JSON_NAME).read_text()
    document = json.loads(text)
    old = json.dumps(document["fitted"]["offset_"])
    for constant in ("NaN", "Infinity", "-Infinity"):
        (feature_model / JSON_NAME).write_text(text.replace(old, constant, 1))
        with pytest.raises(ValueError, match=f"holds {constant}, which is not a JSON number"):
            load(feature_model)


def test_deeply_nested_json_is_a_clear_error(feature_model):
    """The issue: a 100,000-deep JSON raised an uncaught RecursionError."""
    (feature_model / JSON_NAME).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        load(feature_model)


def test_a_huge_json_is_refused_without_reading_it(feature_model):
    with open(feature_model / JSON_NAME, "wb") as file:
        file.truncate(65 * 2**20)  # sparse: 65 MB of zeros, nothing written
    with pytest.raises(ValueError, match="more than a saved skmsc detector's JSON"):
        load(feature_model)


def test_an_untouched_save_scores_exactly_as_saved(fitted_lite0, image_model, digits):
    loaded = load(image_model)
    np.testing.assert_array_equal(loaded.score_samples(digits[0][-20:]),
                                  fitted_lite0.score_samples(digits[0][-20:]))
    assert sorted(p.name for p in image_model.iterdir()) == [JSON_NAME, TENSORS_NAME]


def test_a_non_finite_reduced_gallery_is_refused(tmp_path):
    folder = KNNDetector(gallery_size=0.5, random_state=0).fit(X).save(tmp_path / "small")

    def edit(document, tensors):
        tensors["gallery_"][0, 0] = np.nan

    rebind(folder, edit)
    with pytest.raises(ValueError, match="'gallery_'.*NaN or infinity"):
        load(folder)
