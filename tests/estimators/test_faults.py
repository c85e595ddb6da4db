"""Faults during fit and scoring: interrupts, out-of-memory, missing devices, huge images."""

import copy

import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

import skmsc._estimators._base
import skmsc.nn._network
import skmsc.nn._preprocess
import skmsc.nn._training
from skmsc import MeanShiftedContrastiveDetector

REAL_LOSS = skmsc.nn._training.mean_shifted_contrastive_loss
REAL_EVAL_TRANSFORM = skmsc.nn._preprocess.eval_inputs


def _loss_raising(error, after_steps):
    calls = []

    def loss(z1, z2, *args, **kwargs):
        calls.append(len(z1))
        if len(calls) > after_steps:
            raise error
        return REAL_LOSS(z1, z2, *args, **kwargs)

    return loss, calls


def _snapshot(det):
    encoder = det.encoder_
    return (
        dict(det.__dict__),
        {k: v.clone() for k, v in encoder.state_dict().items()},
    )


@pytest.fixture(scope="module")
def _small_fit(digits):
    X, y = digits
    return MeanShiftedContrastiveDetector(**FAST, epochs=1).fit(X[y == 2][:16])


@pytest.fixture
def small_fit(_small_fit):
    """A fitted detector of its own for each test (they refit it): a copy of one fit."""
    return copy.deepcopy(_small_fit)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("disk on fire")])
def test_interrupt_mid_fine_tuning_leaves_fitted_detector_unchanged(
    small_fit, digits, monkeypatch, error
):
    X, y = digits
    test = X[-12:]
    scores = small_fit.score_samples(test)
    state, weights = _snapshot(small_fit)
    loss, calls = _loss_raising(error, after_steps=1)
    monkeypatch.setattr(skmsc.nn._training, "mean_shifted_contrastive_loss", loss)
    with pytest.raises(type(error)):
        small_fit.set_params(epochs=2).fit(X[y == 7][:16])
    assert len(calls) == 2  # one step was taken (weights changed), the second raised
    small_fit.set_params(epochs=1)
    assert small_fit.__dict__.keys() == state.keys()
    for key, value in state.items():
        assert small_fit.__dict__[key] is value, key
    for key, value in small_fit.encoder_.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
    np.testing.assert_array_equal(small_fit.score_samples(test), scores)


@pytest.mark.parametrize("where", ["fine_tune", "make_index", "extract_features"])
def test_interrupt_leaves_a_new_detector_unfitted(digits, monkeypatch, where):
    X, y = digits
    det = MeanShiftedContrastiveDetector(**FAST, epochs=1)
    fresh = dict(det.__dict__)
    if where == "fine_tune":
        loss, _ = _loss_raising(KeyboardInterrupt(), after_steps=1)
        monkeypatch.setattr(skmsc.nn._training, "mean_shifted_contrastive_loss", loss)
    else:
        # make_index is called by the shared kNN scorer; extract_features by the network
        # (the centre) and by the training loop (the features of the network kept).
        modules = ([skmsc._estimators._base] if where == "make_index"
                   else [skmsc.nn._network, skmsc.nn._training])
        real = getattr(modules[0], where)
        calls = []

        def fail_second_time(*args, **kwargs):
            calls.append(1)
            # extract_features runs twice (centre, then final features): fail the last.
            if where == "make_index" or len(calls) == 2:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        for module in modules:
            monkeypatch.setattr(module, where, fail_second_time)
    with pytest.raises(KeyboardInterrupt):
        det.fit(X[y == 4][:16])
    assert det.__dict__ == fresh
    with pytest.raises(NotFittedError):
        check_is_fitted(det)
    with pytest.raises(NotFittedError):
        det.score_samples(X[:2])


def test_out_of_memory_halves_the_fine_tuning_batch_and_finishes(digits, monkeypatch):
    X, y = digits
    sizes = []

    def loss(z1, z2, *args, **kwargs):
        sizes.append(len(z1))
        if len(z1) > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return REAL_LOSS(z1, z2, *args, **kwargs)

    monkeypatch.setattr(skmsc.nn._training, "mean_shifted_contrastive_loss", loss)
    det = MeanShiftedContrastiveDetector(**{**FAST, "batch_size": 16}, epochs=2)
    with pytest.warns(ResourceWarning, match="batch_size=16; retrying with batch_size=8"):
        det.fit(X[y == 1][:16])
    # 16 fails, 8 fails, then 4 images a step for the rest of training (4 steps/epoch).
    assert sizes == [16, 8] + [4] * 8
    assert det.batch_size == 16  # the parameter is never rewritten
    assert len(det.loss_curve_) == 2 and np.all(np.isfinite(det.loss_curve_))


def test_out_of_memory_at_the_smallest_batch_is_a_clear_error(digits, monkeypatch):
    X, y = digits

    def loss(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(skmsc.nn._training, "mean_shifted_contrastive_loss", loss)
    det = MeanShiftedContrastiveDetector(**FAST, epochs=1)
    with (
        pytest.warns(ResourceWarning),
        pytest.raises(torch.OutOfMemoryError, match="even with batch_size=2.*image_size"),
    ):
        det.fit(X[y == 1][:16])
    with pytest.raises(NotFittedError):
        check_is_fitted(det)


def test_out_of_memory_while_scoring_retries_with_smaller_batches(
    fitted_lite0, digits, monkeypatch
):
    X = digits[0][-20:]
    reference = fitted_lite0.score_samples(X)
    seen = []

    def transform(images, *args):
        seen.append(len(images))
        if len(images) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return REAL_EVAL_TRANSFORM(images, *args)

    monkeypatch.setattr(skmsc.nn._preprocess, "eval_inputs", transform)
    with pytest.warns(ResourceWarning, match="feature extraction with batch_size=16"):
        scores = fitted_lite0.score_samples(X)
    assert seen[:3] == [16, 8, 4] and set(seen[3:]) <= {2}
    np.testing.assert_allclose(scores, reference, atol=1e-5)

    def always(images, *args):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(skmsc.nn._preprocess, "eval_inputs", always)
    with pytest.warns(ResourceWarning), pytest.raises(
        torch.OutOfMemoryError, match="even with batch_size=1"
    ):
        fitted_lite0.score_samples(X)


def test_huge_images_are_converted_a_few_at_a_time(fitted_lite0, digits, monkeypatch):
    """The float copy of a scoring batch is bounded by EXTRACT_FLOAT_BUDGET_BYTES."""
    X = digits[0][-10:]
    reference = fitted_lite0.score_samples(X)
    seen = []

    def transform(images, *args):
        seen.append(images.shape[0])
        return REAL_EVAL_TRANSFORM(images, *args)

    monkeypatch.setattr(skmsc.nn._preprocess, "eval_inputs", transform)
    # Room for 3 images of 8x8 as float32 RGB: batches of 3 instead of batch_size=16.
    monkeypatch.setattr(skmsc.nn._training, "EXTRACT_FLOAT_BUDGET_BYTES", 3 * 8 * 8 * 3 * 4)
    np.testing.assert_allclose(fitted_lite0.score_samples(X), reference, atol=1e-5)
    assert seen == [3, 3, 3, 1]


def test_large_images_fit_and_score(digits):
    """Megapixel images go through (resized inside, one float batch at a time)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(4, 1024, 1536, 3), dtype=np.uint8)
    before = X.copy()
    det = MeanShiftedContrastiveDetector(**{**FAST, "n_neighbors": 1}, epochs=0).fit(X[:3])
    scores = det.score_samples(X[3:])
    assert scores.shape == (1,) and np.isfinite(scores[0])
    np.testing.assert_array_equal(X, before)


def test_absent_device_is_refused_before_any_network_is_built(digits, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a network was built before the device was checked")

    monkeypatch.setattr(skmsc.nn._network, "build_backbone", no_network)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:3' does not exist: this machine has 1"):
        MeanShiftedContrastiveDetector(**FAST, device="cuda:3").fit(digits[0][:10])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available.*device='cpu'"):
        MeanShiftedContrastiveDetector(**FAST, device="cuda").fit(digits[0][:10])
