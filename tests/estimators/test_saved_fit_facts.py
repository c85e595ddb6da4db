"""Item: what fit ran in and on survives save/load: precision_, the training source,
count, date and duration (the model card's facts), each checked on load; and the cached
features + kNN pipeline saves step by step without pickle."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST
from saved_models import write_document
from sklearn.pipeline import Pipeline

import skmsc.nn._network
from skmsc import KNNDetector, MeanShiftedContrastiveDetector, MeanShiftedFeatures
from skmsc.persistence import JSON_NAME, load


@pytest.mark.parametrize("cls", [MeanShiftedContrastiveDetector, MeanShiftedFeatures])
def test_precision_of_the_fit_survives_loading_on_another_machine(cls, digits, tmp_path,
                                                                  monkeypatch):
    X = digits[0][:20]
    fitted = cls(**FAST, epochs=0, precision="bfloat16").fit(X)
    assert fitted.precision_["features"] == "bfloat16"
    folder = fitted.save(tmp_path / "m")
    # On a machine where the precision parameter would resolve to float32 (no bfloat16):
    monkeypatch.setattr(skmsc.nn._network, "resolve_precision",
                        lambda precision, device, training: "float32")
    loaded = load(folder)
    assert loaded.precision_ == fitted.precision_


def test_fit_facts_are_recorded_saved_and_loaded(image_folder, tmp_path):
    det = MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(image_folder.normal)
    assert det.training_source_ == f"24 image files under {image_folder.root / 'normal'}"
    assert det.n_samples_fit_ == 24 and det.fit_seconds_ > 0
    assert det.fit_started_.endswith("+00:00")  # ISO 8601, UTC
    array_fit = MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(image_folder.normal_array)
    assert array_fit.training_source_ == "array of shape (24, 8, 8), dtype uint8"
    loaded = load(det.save(tmp_path / "m"))
    for name in ("training_source_", "n_samples_fit_", "fit_started_", "fit_seconds_"):
        assert getattr(loaded, name) == getattr(det, name), name


@pytest.fixture(scope="module")
def saved_array_fit(image_folder, tmp_path_factory):
    """One saved fit, copied by the tests that damage it."""
    return MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(
        image_folder.normal_array).save(tmp_path_factory.mktemp("fit") / "m")


def test_the_shared_saved_fit_loads_as_saved(saved_array_fit):
    # The damaged copies below must fail for their edit alone.
    assert load(saved_array_fit).n_samples_fit_ == 24


@pytest.mark.parametrize("key, value, match", [
    ("precision_", {"fine_tuning": "float32", "features": "int8"}, "precision_"),
    ("precision_", "float32", "precision_"),
    ("n_samples_fit_", 0, "n_samples_fit_"),
    ("n_samples_fit_", 23, "n_samples_fit_ does not match"),
    ("n_samples_fit_", True, "n_samples_fit_"),
    ("fit_started_", "yesterday", "fit_started_"),
    ("fit_seconds_", -1.0, "fit_seconds_"),
    ("fit_seconds_", "long", "fit_seconds_"),
    ("training_source_", 5, "training_source_"),
])
def test_malformed_fit_facts_are_refused_on_load(saved_array_fit, tmp_path, key, value, match):
    folder = Path(shutil.copytree(saved_array_fit, tmp_path / "m"))  # each case edits a copy
    document = json.loads((folder / JSON_NAME).read_text())
    document["fitted"][key] = value
    write_document(folder, document)  # the files bound to the edit: the value is checked
    with pytest.raises(ValueError, match=match):
        load(folder)


def test_a_save_from_before_the_fit_facts_loads_with_them_unknown(tmp_path):
    folder = KNNDetector().fit(np.random.default_rng(0).normal(size=(20, 2))).save(tmp_path / "k")
    document = json.loads((folder / JSON_NAME).read_text())
    for key in ("training_source_", "n_samples_fit_", "fit_started_", "fit_seconds_"):
        del document["fitted"][key]
    write_document(folder, document)
    loaded = load(folder)
    assert loaded.training_source_ is None and loaded.fit_seconds_ is None


def test_cached_pipeline_saves_step_by_step_without_pickle(digits, tmp_path):
    """Coverage (this already worked on main): the features step and the kNN step each
    save and load without pickle, and the reassembled pipeline scores as before."""
    X, y = digits
    pipe = Pipeline([("features", MeanShiftedFeatures(**FAST, epochs=0)),
                     ("knn", KNNDetector(contamination=0.05))],
                    memory=str(tmp_path / "cache")).fit(X[y == 0][:30])
    for name, step in pipe.steps:
        step.save(tmp_path / "pipe" / name)
    again = Pipeline([(name, load(tmp_path / "pipe" / name)) for name, _ in pipe.steps])
    np.testing.assert_array_equal(again.score_samples(X[-10:]), pipe.score_samples(X[-10:]))
    np.testing.assert_array_equal(again.predict(X[-10:]), pipe.predict(X[-10:]))
