"""A fit owns its data, refuses to diverge, and never exposes a half state to other threads.

Issue #16: item 5 (no aliasing of X), item 6 (divergence is an error that leaves the
detector as it was), item 12 (a reader sees the old model or the new one, never a mix).
"""

import re
import threading
import time

import numpy as np
import pytest
from conftest import FAST
from hostile_files import refit_scenario, write_nan_weights

from skmsc import KNNDetector, MeanShiftedContrastiveDetector, MeanShiftedFeatures


def _arrays_of(estimator):
    return {k: v for k, v in vars(estimator).items() if isinstance(v, np.ndarray)}


def _inputs(tmp_path):
    """Feature vectors as a caller may hold them: float32 (C and Fortran order), float64,
    and float32 memmaps opened read-write and read-only."""
    X = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    path = tmp_path / "X.dat"
    X.tofile(path)
    return {
        "float32": X.copy(),
        "fortran": np.asfortranarray(X),
        "float64": X.astype(np.float64),
        "memmap": np.memmap(path, dtype=np.float32, mode="r+", shape=X.shape),
        "memmap-readonly": np.memmap(path, dtype=np.float32, mode="r", shape=X.shape),
    }


@pytest.mark.parametrize("kind", ["float32", "fortran", "float64", "memmap", "memmap-readonly"])
@pytest.mark.parametrize("make", [lambda: MeanShiftedContrastiveDetector(random_state=0),
                                  lambda: KNNDetector(random_state=0)],
                         ids=["detector", "knn"])
def test_a_feature_fit_keeps_its_own_copy(tmp_path, kind, make):
    X = _inputs(tmp_path)[kind]
    det = make().fit(X)
    for name, array in _arrays_of(det).items():
        assert not np.shares_memory(array, X), name
    query = np.zeros((3, 6), np.float32)
    before = det.score_samples(query)
    if X.flags.writeable:  # the issue: scores went from -2.65 to -107821
        X[:] = 1000.0
        np.testing.assert_array_equal(det.score_samples(query), before)


def test_transform_of_feature_vectors_returns_a_new_array():
    X = np.random.default_rng(1).normal(size=(12, 5)).astype(np.float32)
    features = MeanShiftedFeatures(random_state=0).fit(X)
    out = features.transform(X)
    assert not np.shares_memory(out, X) and np.array_equal(out, X)


# ------------------------------------------------------------------ divergence
@pytest.fixture(scope="module")
def diverging_images():
    return np.random.default_rng(0).integers(0, 256, size=(12, 16, 16), dtype=np.uint8)


@pytest.mark.parametrize("setting, named", [
    (dict(weight_decay=1e30), "weight_decay=1e+30"),
    (dict(learning_rate=1e10), "learning_rate=1e+10"),
    (dict(temperature=1e-30), "temperature=1e-30"),
])
def test_divergence_is_an_error_naming_the_cause_and_the_fit_is_undone(
    diverging_images, setting, named
):
    X = diverging_images
    det = MeanShiftedContrastiveDetector(**{**FAST, "image_size": 16}, weights=None, epochs=0,
                                         early_stopping=False).fit(X)
    state, scores = dict(det.__dict__), det.score_samples(X[:4])
    det.set_params(epochs=3, **setting)
    with pytest.raises(ValueError, match=re.escape(named)) as info:
        det.fit(X)
    assert "NaN or infinite" in str(info.value)
    assert isinstance(info.value, FloatingPointError)  # DivergenceError is both
    det.set_params(epochs=0, learning_rate=1e-5, weight_decay=5e-5, temperature=0.25)
    assert det.__dict__ == state  # parameters restored above, fitted state untouched:
    assert all(det.__dict__[k] is v for k, v in state.items() if k.endswith("_"))
    np.testing.assert_array_equal(det.score_samples(X[:4]), scores)


def test_nan_weights_give_a_clear_error_not_nan_scores(diverging_images, tmp_path):
    path = write_nan_weights(tmp_path / "nan.pth")
    det = MeanShiftedContrastiveDetector(**FAST, weights=str(path), epochs=0,
                                         precision="float32")
    with pytest.raises(ValueError, match="features are NaN or infinite.*weights"):
        det.fit(diverging_images)
    assert not hasattr(det, "offset_")


def test_feature_values_too_large_for_float32_distances_are_refused():
    X = np.random.default_rng(0).normal(size=(20, 4)) * 1e30
    for det in (KNNDetector(), MeanShiftedContrastiveDetector()):
        with pytest.raises(ValueError, match="too large for float32 distances"):
            det.fit(X)
    fitted = KNNDetector().fit(X / 1e30)
    with pytest.raises(ValueError, match="float32's range"):
        fitted.score_samples(np.full((1, 4), 1e300))


# ------------------------------------------------------------------ concurrency
def _hammer(score, n_calls, outcomes, stop):
    """Call ``score()`` until ``stop`` is set (at least ``n_calls`` times); record outcomes."""
    while not stop.is_set() or len(outcomes) < n_calls:
        try:
            outcomes.append(("ok", score()))
        except Exception as exc:  # noqa: BLE001 - every outcome is checked
            outcomes.append((type(exc).__name__, str(exc)))


def test_scoring_while_another_thread_refits_sees_one_model_or_the_other():
    """The issue's scenario: one thread scores in a loop; another refits on bad input (which
    fails), on other data, and on another feature size."""
    fits, bad, query = refit_scenario()
    expected = {}
    for key in ("a", "b"):
        det = MeanShiftedContrastiveDetector(random_state=0).fit(fits[key])
        expected[key] = (det.score_samples(query), det.decision_function(query))
    det = MeanShiftedContrastiveDetector(random_state=0).fit(fits["a"])
    stop, results = threading.Event(), {"score": [], "decision": []}
    readers = [
        threading.Thread(target=_hammer, args=(lambda: det.score_samples(query), 200,
                                               results["score"], stop)),
        threading.Thread(target=_hammer, args=(lambda: det.decision_function(query), 200,
                                               results["decision"], stop)),
    ]
    for reader in readers:
        reader.start()
    refits = 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        for key in ("b", "a", "wide", "a"):
            with pytest.raises(ValueError, match="NaN"):
                det.fit(bad)
            det.fit(fits[key])
            refits += 1
    stop.set()
    for reader in readers:
        reader.join()
    assert refits > 8
    for which, column in (("score", 0), ("decision", 1)):
        kinds = {}
        for kind, value in results[which]:
            if kind == "ok":
                match = [k for k in expected if np.array_equal(value, expected[k][column])]
                assert match, f"{which}: scores of neither model (a mix of two states)"
                kinds[match[0]] = kinds.get(match[0], 0) + 1
            else:
                # The wide model is current: a clear refusal of the 8-feature query.
                assert kind == "ValueError" and "features" in value, (kind, value)
                kinds["refused"] = kinds.get("refused", 0) + 1
        assert sum(kinds.values()) >= 200 and "a" in kinds, kinds


def test_transform_and_save_while_another_thread_refits(tmp_path):
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=(30, 4)), rng.normal(size=(30, 9))
    features = MeanShiftedFeatures(random_state=0).fit(small)
    knn = KNNDetector().fit(small)
    stop, transformed, saved = threading.Event(), [], []

    def save():
        folder = tmp_path / f"m{len(saved) % 3}"
        knn.save(folder)
        loaded = KNNDetector.load(folder)
        return loaded.n_features_in_ == loaded.train_features_.shape[1]

    readers = [
        threading.Thread(target=_hammer, args=(lambda: features.transform(small), 100,
                                               transformed, stop)),
        threading.Thread(target=_hammer, args=(save, 10, saved, stop)),
    ]
    for reader in readers:
        reader.start()
    for _ in range(25):
        features.fit(large)
        features.fit(small)
        knn.fit(large)
        knn.fit(small)
    stop.set()
    for reader in readers:
        reader.join()
    for kind, value in transformed:
        assert kind == "ok" and np.array_equal(value, small.astype(np.float32)) or (
            kind == "ValueError" and "features" in value), (kind, value)
    assert all(outcome == ("ok", True) for outcome in saved), saved[:3]
