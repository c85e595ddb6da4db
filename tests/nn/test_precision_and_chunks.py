"""The ``precision`` parameter and memory-bounded scoring in chunks."""

import numpy as np
import pytest
import torch
from conftest import FAST
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

import skmsc._estimators._base
import skmsc.nn._network
import skmsc.nn._runtime
import skmsc.nn._training
from skmsc import MeanShiftedContrastiveDetector
from skmsc._estimators._base import scoring_chunk_rows
from skmsc.nn._runtime import grad_scaler, resolve_precision

CPU = torch.device("cpu")


def test_invalid_precision_is_refused_in_fit():
    X = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(ValueError, match="precision"):
        MeanShiftedContrastiveDetector(precision="int8").fit(X)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cpu(monkeypatch, native):
    monkeypatch.setattr(skmsc.nn._runtime, "cpu_has_native_bfloat16", lambda: native)
    # Training stays float32 on CPUs (bfloat16 backward is slow there); inference uses
    # bfloat16 only where the CPU computes it natively.
    assert resolve_precision("auto", CPU, training=True) == "float32"
    expected = "bfloat16" if native else "float32"
    assert resolve_precision("auto", CPU, training=False) == expected
    for explicit in ("float32", "bfloat16", "float16"):
        assert resolve_precision(explicit, CPU, training=True) == explicit
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("half", CPU, training=False)


def test_loss_scaling_only_for_float16(digits, monkeypatch):
    assert not grad_scaler("bfloat16", CPU).is_enabled()
    assert not grad_scaler("float32", CPU).is_enabled()
    scaler = grad_scaler("float16", CPU)
    assert scaler.is_enabled() and scaler.get_scale() > 1  # scaled against underflow
    # And fine-tuning really asks for it, with the precision it runs in.
    asked = []

    def spy(precision, device):
        asked.append(precision)
        return grad_scaler(precision, device)

    monkeypatch.setattr(skmsc.nn._training, "grad_scaler", spy)
    det = MeanShiftedContrastiveDetector(**FAST, epochs=1, precision="float16")
    det.fit(digits[0][:8])
    assert asked == ["float16"] and det.precision_["fine_tuning"] == "float16"
    assert np.isfinite(det.loss_curve_).all()


def test_bfloat16_scores_are_finite_and_close_to_float32(digits):
    X, y = digits
    train, test, y_test = X[y == 0][:40], X[200:320], (y[200:320] == 0).astype(int)
    scores, aucs = {}, {}
    for precision in ("float32", "bfloat16"):
        det = MeanShiftedContrastiveDetector(epochs=0, precision=precision, **FAST).fit(train)
        assert det.precision_ == {"fine_tuning": precision, "features": precision}
        scores[precision] = det.score_samples(test)
        aucs[precision] = roc_auc_score(y_test, scores[precision])
        assert np.all(np.isfinite(scores[precision]))
    assert spearmanr(scores["float32"], scores["bfloat16"]).statistic > 0.97
    assert abs(aucs["float32"] - aucs["bfloat16"]) < 0.02
    assert not np.array_equal(scores["float32"], scores["bfloat16"])  # it did run in bf16


@pytest.mark.slow
def test_bfloat16_fine_tuning_gives_a_finite_loss(digits):
    X, y = digits
    det = MeanShiftedContrastiveDetector(epochs=1, precision="bfloat16", **FAST)
    det.fit(X[y == 1][:16])
    assert np.isfinite(det.loss_curve_[0])
    assert np.all(np.isfinite(det.train_features_))
    assert det.train_features_.dtype == np.float32


def test_chunk_rows_follow_the_budget(monkeypatch):
    monkeypatch.setattr(skmsc._estimators._base, "SCORING_MEMORY_BUDGET_BYTES", 4 * 1280 * 100)
    assert scoring_chunk_rows(1280, 32) == 96  # whole batches within the budget
    assert scoring_chunk_rows(1280, 256) == 256  # never below one batch


def test_chunked_scoring_gives_identical_scores_and_bounded_batches(
    fitted_lite0, digits, monkeypatch
):
    X, _ = digits
    X = X[:100]
    whole = fitted_lite0.score_samples(X)
    sizes = []
    extract = skmsc.nn._network.extract_features

    def spy(encoder, images, *args, **kwargs):
        sizes.append(len(images))
        return extract(encoder, images, *args, **kwargs)

    monkeypatch.setattr(skmsc.nn._network, "extract_features", spy)
    # A budget of one 1280-d feature: every chunk is a single batch.
    monkeypatch.setattr(skmsc._estimators._base, "SCORING_MEMORY_BUDGET_BYTES", 4 * 1280)
    chunked = fitted_lite0.score_samples(X)
    np.testing.assert_array_equal(chunked, whole)
    assert max(sizes) == fitted_lite0.batch_size and sum(sizes) == len(X)


def test_chunked_scoring_of_feature_vectors(monkeypatch):
    rng = np.random.default_rng(0)
    X_train, X_test = rng.normal(size=(50, 6)), rng.normal(size=(37, 6))
    det = MeanShiftedContrastiveDetector(batch_size=4).fit(X_train)
    whole = det.score_samples(X_test)
    monkeypatch.setattr(skmsc._estimators._base, "SCORING_MEMORY_BUDGET_BYTES", 1)
    np.testing.assert_array_equal(det.score_samples(X_test), whole)
