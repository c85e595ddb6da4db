"""Item: the threshold follows contamination, or says loudly that it does not.

``set_params(contamination=...)`` after fit used to leave ``offset_`` as it was, so
``predict`` silently flagged the old fraction. Now ``set_threshold`` moves the threshold
from the stored leave-one-out scores (no refit), and a stale threshold is an error.
"""

import copy
import json
import pickle

import numpy as np
import pytest
from saved_models import write_document
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmsc import KNNDetector, MeanShiftedContrastiveDetector
from skmsc._estimators._base import offset_from_scores
from skmsc.persistence import JSON_NAME, load


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(500, 4)), rng.normal(size=(20000, 4))


@pytest.mark.parametrize("cls", [KNNDetector, MeanShiftedContrastiveDetector])
def test_changing_contamination_without_moving_the_threshold_is_an_error(cls):
    X, X_new = _data()
    det = cls(random_state=0).fit(X)
    scores = det.score_samples(X_new)
    det.set_params(contamination=0.2)
    for method in (det.predict, det.decision_function):
        with pytest.raises(ValueError, match=r"contamination is 0\.2.*set for "
                           r"contamination=0\.01.*set_threshold\(0\.2\)"):
            method(X_new)
    np.testing.assert_array_equal(det.score_samples(X_new), scores)  # scores do not depend on it
    # Setting it back to what the threshold was made for is fine ("auto" is 0.01).
    det.set_params(contamination=0.01)
    assert det.predict(X_new[:3]).shape == (3,)


@pytest.mark.parametrize("contamination", [0.05, 0.2, "auto"])
def test_set_threshold_equals_a_refit_with_that_contamination(contamination):
    X, X_new = _data()
    det = MeanShiftedContrastiveDetector(random_state=0).fit(X)
    refit = MeanShiftedContrastiveDetector(random_state=0, contamination=contamination).fit(X)
    assert det.set_threshold(contamination) is det
    assert det.offset_ == refit.offset_ and det.contamination_ == refit.contamination_
    assert det.get_params() == refit.get_params()  # clone + fit reproduces it
    np.testing.assert_array_equal(det.predict(X_new), refit.predict(X_new))
    fraction = 0.01 if contamination == "auto" else contamination
    assert np.mean(det.predict(X_new) == -1) == pytest.approx(fraction, abs=0.015)


def test_set_threshold_without_argument_applies_set_params():
    X, X_new = _data()
    det = KNNDetector().fit(X).set_params(contamination=0.1)
    det.set_threshold()
    assert det.contamination_ == 0.1
    assert det.offset_ == offset_from_scores(det.train_scores_, 0.1)


def test_set_threshold_refuses_bad_values_and_unfitted_detectors():
    X, _ = _data()
    det = KNNDetector().fit(X)
    before = copy.deepcopy(det.__dict__)
    for bad in (0.7, 0.0, "most", -0.1):
        with pytest.raises(ValueError, match="contamination"):
            det.set_threshold(bad)
    assert det.offset_ == before["offset_"] and det.contamination == before["contamination"]
    with pytest.raises(NotFittedError):
        KNNDetector().set_threshold(0.1)


def test_fit_sets_offset_by_the_one_rule():
    X, _ = _data()
    det = KNNDetector(contamination=0.07).fit(X)
    assert det.offset_ == offset_from_scores(det.train_scores_, 0.07)
    assert det.contamination_ == 0.07


def test_threshold_in_a_pipeline_moves_on_its_step():
    X, X_new = _data()
    pipe = Pipeline([("scale", StandardScaler()), ("knn", KNNDetector())]).fit(X)
    pipe.set_params(knn__contamination=0.1)
    with pytest.raises(ValueError, match=r"set_threshold\(0\.1\) on the KNNDetector"):
        pipe.predict(X_new)
    pipe[-1].set_threshold()
    assert np.mean(pipe.predict(X_new) == -1) == pytest.approx(0.1, abs=0.02)


def test_moved_threshold_survives_save_load_and_pickle(tmp_path):
    X, X_new = _data()
    det = KNNDetector().fit(X).set_threshold(0.15)
    loaded = load(det.save(tmp_path / "det"))
    assert (loaded.contamination, loaded.contamination_, loaded.offset_) == (
        0.15, 0.15, det.offset_)
    np.testing.assert_array_equal(loaded.predict(X_new), det.predict(X_new))
    unpickled = pickle.loads(pickle.dumps(det))
    assert unpickled.contamination_ == 0.15


def test_load_checks_the_threshold_against_the_training_scores(tmp_path):
    X, _ = _data()
    folder = KNNDetector(contamination=0.1).fit(X).save(tmp_path / "det")
    document = json.loads((folder / JSON_NAME).read_text())
    for key, value, match in [
        ("offset_", document["fitted"]["offset_"] + 1.0, "does not follow from train_scores_"),
        ("contamination_", 0.9, "not a fraction"),
        ("contamination_", "lots", "not a fraction"),
    ]:
        broken = json.loads(json.dumps(document))
        broken["fitted"][key] = value
        write_document(folder, broken)  # bound to the edit: the value itself is checked
        with pytest.raises(ValueError, match=match):
            load(folder)
    # A save from before contamination_ existed: the parameter says what offset_ was for.
    old = json.loads(json.dumps(document))
    del old["fitted"]["contamination_"]
    write_document(folder, old)
    assert load(folder).contamination_ == 0.1


def test_a_pickle_from_before_contamination_existed_still_predicts():
    X, X_new = _data()
    det = KNNDetector(contamination=0.05).fit(X)
    state = det.__getstate__()
    del state["contamination_"]
    old = KNNDetector.__new__(KNNDetector)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.predict(X_new), det.predict(X_new))
