"""The label-free fine-tuning safeguard (early_stopping) and its pieces."""

import numpy as np
import pytest
import torch

from skmsc import MeanShiftedContrastiveDetector
from skmsc.nn import _safeguard
from skmsc.nn._safeguard import (
    GLOBAL_KINDS,
    MAX_VALIDATION_IMAGES,
    MIN_GAIN,
    PROXY_KINDS,
    auc,
    best_epoch,
    gain_lower_bound,
    global_anomalies,
    proxy_anomalies,
    proxy_auc,
    synthetic_anomalies,
    validation_rows,
)

FAST = dict(backbone="efficientnet_lite0", image_size=32, batch_size=16, random_state=0)


@pytest.fixture(scope="module")
def zeros(digits):
    X, y = digits
    return X[y == 0][:40]  # 10 held out (the least the safeguard holds out), 30 trained


@pytest.fixture(scope="module")
def tuned(zeros):
    """One guarded fine-tuning, shared by the tests that only read its result."""
    return MeanShiftedContrastiveDetector(epochs=2, learning_rate=1e-3, **FAST).fit(zeros)


def test_validation_rows_split_disjoint_sorted_and_capped():
    train, held_out = validation_rows(1000, 0.1, seed=0)
    assert len(held_out) == 100 and len(train) == 900
    assert np.intersect1d(train, held_out).size == 0
    assert np.array_equal(np.sort(np.r_[train, held_out]), np.arange(1000))
    assert np.all(np.diff(held_out) > 0)
    _, capped = validation_rows(10_000, 0.5, seed=0)
    assert len(capped) == MAX_VALIDATION_IMAGES
    assert len(validation_rows(50, 0.1, seed=0)[1]) == 10  # at least 10 held out
    assert len(validation_rows(30, 0.1, seed=0)[1]) == 10
    assert validation_rows(29, 0.1, seed=0) is None  # 10 would be over a third
    assert np.array_equal(validation_rows(1000, 0.1, 3)[1], validation_rows(1000, 0.1, 3)[1])


def test_synthetic_anomalies_change_every_image_and_leave_input_alone():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(40, 3, 24, 24)).astype(np.float32))
    before = images.clone()
    out = synthetic_anomalies(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(images, before)
    changed = (out - images).abs().flatten(1).amax(dim=1)
    assert bool((changed > 0).all())
    # Local edits touch part of the image only, blends all of it.
    fraction = ((out - images).abs() > 0).float().mean(dim=(1, 2, 3))
    assert float(fraction.min()) < 0.5 and float(fraction.max()) > 0.9
    again = synthetic_anomalies(images, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_global_anomalies_rearrange_the_whole_image():
    images = torch.arange(6 * 3 * 8 * 8, dtype=torch.float32).reshape(6, 3, 8, 8)
    before = images.clone()
    for kind in GLOBAL_KINDS:
        out = global_anomalies(images, torch.Generator().manual_seed(0), kind)
        assert out.shape == images.shape and torch.equal(images, before), kind
        # Every quadrant of every image changed (a mosaic keeps the image's own top left) ...
        for top in (0, 4):
            for left in (0, 4):
                if kind == "mosaic" and top == left == 0:
                    continue
                part = (slice(None), slice(None), slice(top, top + 4), slice(left, left + 4))
                assert bool(((out[part] - images[part]).abs().flatten(1).amax(1) > 0).all()), kind
        # ... and only by moving pixels: the same values (own image, or others for a mosaic).
        if kind != "mosaic":
            assert torch.equal(out.flatten(1).sort(dim=1).values,
                               images.flatten(1).sort(dim=1).values), kind
    turned = global_anomalies(images, torch.Generator().manual_seed(0), "rotate")
    assert all(any(torch.equal(t, torch.rot90(i, k, (1, 2))) for k in (1, 3))
               for t, i in zip(turned, images, strict=True))
    with pytest.raises(ValueError, match="kind must be one of"):
        global_anomalies(images, torch.Generator(), "spin")
    with pytest.raises(ValueError, match="at least 4 images"):
        global_anomalies(images[:3], torch.Generator(), "mosaic")


def test_proxy_anomalies_make_every_kind_of_every_image_reproducibly():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(12, 3, 8, 8)).astype(np.float32))
    assert PROXY_KINDS == ("cut-paste", "scar", "blend", "rotate", "flip", "shuffle", "mosaic")
    for kind in PROXY_KINDS:
        out = proxy_anomalies(images, kind, seed=5)
        assert out.shape == images.shape
        changed = (out - images).abs().flatten(1).amax(dim=1)
        if kind != "flip":  # an image can be symmetric; these random ones are not
            assert bool((changed > 0).all()), kind
        # Made again from the seed alone: each epoch scores the same anomalies.
        assert torch.equal(out, proxy_anomalies(images.clone(), kind, seed=5))
    local = proxy_anomalies(images, "scar", seed=5)
    assert torch.equal(local, synthetic_anomalies(
        images, torch.Generator().manual_seed(5 + PROXY_KINDS.index("scar")), kinds=("scar",)))
    assert not torch.equal(proxy_anomalies(images, "shuffle", seed=5),
                           proxy_anomalies(images, "shuffle", seed=6))


def test_proxy_auc_ranks_far_anomalies_as_anomalous():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 8))
    train, held_out = np.arange(40), np.arange(40, 60)
    far = rng.normal(size=(20, 8)) + 10
    assert proxy_auc(features, far, train, held_out) == 1.0
    near = rng.normal(size=(20, 8))
    assert 0.2 < proxy_auc(features, near, train, held_out) < 0.8


def _scores(auc_target, n=100, seed=0, shift=None):
    """(normal, anomalous) scores with separation ``shift``; a shared seed pairs epochs."""
    rng = np.random.default_rng(seed)
    normal, anomalous = rng.normal(size=n), rng.normal(size=n)
    return normal + (shift if shift is not None else auc_target), anomalous


def test_best_epoch_keeps_pretrained_unless_clearly_beaten():
    # Other seeds: each epoch's scores carry their own noise, as real epochs' do.
    base = _scores(0.0, shift=0.5)
    much_better = _scores(0.0, seed=1, shift=1.5)
    slightly_better = _scores(0.0, seed=2, shift=0.75)  # a gain well inside the noise
    worse = _scores(0.0, seed=3, shift=0.0)
    assert best_epoch([base, much_better, worse]) == 1
    assert best_epoch([base, worse, much_better, much_better]) == 2  # earliest of equals
    assert auc(*slightly_better) > auc(*base) + MIN_GAIN
    assert best_epoch([base, slightly_better]) == 0
    assert best_epoch([base, worse]) == 0
    assert best_epoch([base]) == 0
    assert gain_lower_bound(much_better, base) > 0 > gain_lower_bound(slightly_better, base)


def test_bootstrap_auc_is_roc_auc_score_bit_for_bit(monkeypatch):
    # The bootstrap scores its resamples with _curve_auc (no input checks): it must give
    # auc()'s (scikit-learn's) floats exactly, ties, float32, integers and tiny sets included.
    rng = np.random.default_rng(0)
    for case in range(100):
        n_normal, n_anomalous = int(rng.integers(1, 40)), int(rng.integers(1, 300))
        normal = rng.normal(size=n_normal) + rng.uniform(-1, 3)
        anomalous = rng.normal(size=n_anomalous)
        if case % 4 == 1:
            normal, anomalous = np.round(normal, 1), np.round(anomalous, 1)
        elif case % 4 == 2:
            normal, anomalous = normal.astype(np.float32), anomalous.astype(np.float32)
        elif case % 4 == 3:
            normal, anomalous = rng.integers(0, 4, n_normal), rng.integers(0, 4, n_anomalous)
        assert _safeguard._curve_auc(normal, anomalous) == auc(normal, anomalous), case
    # And the bound is the one resampled with auc() itself.
    monkeypatch.setattr(_safeguard, "BOOTSTRAP_ROUNDS", 25)
    base = (np.round(rng.normal(size=30), 1), np.round(rng.normal(size=210), 1))
    epoch = (base[0] + np.round(rng.normal(0.2, 0.3, size=30), 1), base[1])
    draw, gains = np.random.default_rng(7), []
    for _ in range(25):
        i, j = draw.integers(0, 30, 30), draw.integers(0, 210, 210)
        gains.append(auc(epoch[0][i], epoch[1][j]) - auc(base[0][i], base[1][j]))
    assert gain_lower_bound(epoch, base, seed=7) == np.percentile(gains, 5.0)
    # Scores that auc() refuses are still refused.
    with pytest.raises(ValueError, match="NaN"):
        gain_lower_bound((np.r_[np.nan, base[0][1:]], base[1]), base)


def test_noisy_proxy_keeps_pretrained():
    # Proxies near 0.5 (synthetic anomalies hard to tell apart) are noise: a 1-point
    # "gain" of independent noise must not make a fine-tuned epoch win.
    base = (np.random.default_rng(1).normal(size=100), np.random.default_rng(2).normal(size=100))
    noise = (np.random.default_rng(3).normal(size=100), np.random.default_rng(4).normal(size=100))
    if auc(*noise) > auc(*base) + MIN_GAIN:
        assert best_epoch([base, noise]) == 0


def test_harmful_fine_tuning_returns_the_pretrained_network(zeros):
    # A huge learning rate wrecks the network; the safeguard must give back epoch 0.
    pretrained = MeanShiftedContrastiveDetector(epochs=0, **FAST).fit(zeros)
    det = MeanShiftedContrastiveDetector(epochs=2, learning_rate=50.0, **FAST).fit(zeros)
    assert det.best_epoch_ == 0
    assert len(det.validation_scores_) == 1 + len(det.loss_curve_)
    np.testing.assert_allclose(det.train_features_, pretrained.train_features_, atol=1e-6)
    for (name, a), (_, b) in zip(det.encoder_.state_dict().items(),
                                 pretrained.encoder_.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    np.testing.assert_allclose(det.score_samples(zeros[:10]),
                               pretrained.score_samples(zeros[:10]), atol=1e-5)
    # Without the safeguard one epoch of the same fit changes the network.
    unguarded = MeanShiftedContrastiveDetector(
        epochs=1, learning_rate=50.0, early_stopping=False, **FAST).fit(zeros)
    assert unguarded.best_epoch_ == 1 and unguarded.validation_scores_ is None
    assert not np.allclose(unguarded.train_features_, pretrained.train_features_, atol=1e-3)


def test_kept_epoch_matches_its_features_and_gallery_has_every_image(zeros, tuned):
    det = tuned
    assert det.train_features_.shape[0] == len(zeros)  # held-out images join the gallery
    scores = det.validation_scores_
    assert det.best_epoch_ == 0 or scores[det.best_epoch_] == max(scores[1:])
    # The stored gallery is what the kept network computes.
    np.testing.assert_allclose(det.train_features_[:20],
                               det._extract(det._validated(zeros[:20])), atol=1e-4)


def test_patience_stops_training(zeros):
    det = MeanShiftedContrastiveDetector(epochs=6, learning_rate=50.0, n_iter_no_change=1,
                                         **FAST).fit(zeros)
    assert len(det.loss_curve_) < 6
    assert len(det.validation_scores_) == len(det.loss_curve_) + 1


def test_too_few_images_warn_and_keep_last_epoch(digits):
    X, y = digits
    with pytest.warns(UserWarning, match="early_stopping holds out at least 10 images"):
        det = MeanShiftedContrastiveDetector(epochs=1, **FAST).fit(X[y == 0][:29])
    assert det.validation_scores_ is None and det.best_epoch_ == 1


def test_safeguard_is_deterministic(zeros, tuned):
    a = tuned
    b = MeanShiftedContrastiveDetector(epochs=2, learning_rate=1e-3, **FAST).fit(zeros)
    assert a.validation_scores_ == b.validation_scores_
    np.testing.assert_array_equal(a.train_features_, b.train_features_)


def test_safeguard_state_survives_save_and_load(tuned, tmp_path):
    det = tuned
    loaded = MeanShiftedContrastiveDetector.load(det.save(tmp_path / "m"))
    assert loaded.validation_scores_ == det.validation_scores_
    assert loaded.best_epoch_ == det.best_epoch_
    assert loaded.early_stopping is True and loaded.n_iter_no_change == 3


def test_safeguard_works_on_image_files(image_folder):
    from skmsc.data.files import list_image_files

    files = list_image_files(image_folder.root / "other") * 3  # 33 files, 16 held out
    det = MeanShiftedContrastiveDetector(epochs=1, learning_rate=1e-3, validation_fraction=0.5,
                                         **FAST).fit(files)
    assert len(det.validation_scores_) == 2 and det.train_features_.shape[0] == len(files)
