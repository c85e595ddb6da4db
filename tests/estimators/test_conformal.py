"""Item: conformal p-values from the leave-one-out training scores, and their guarantee.

The guarantee is checked on real images: held-out normal images of Fashion-MNIST and of
the ELPV solar cells, with pretrained features (epochs=0). For ``n`` calibration scores and
a level ``alpha``, the number of ``m`` new normal images with ``p <= alpha`` follows a
beta-binomial distribution (the exact law of conformal false alarms for one calibration
set: Vovk 2012; Angelopoulos & Bates 2021, sec. 3.2), so the flagged fraction is checked
against its two-sided 99.9 % interval. The same check refuses p-values calibrated on the
self-inclusive training scores (each training image its own nearest neighbour), which
shows that it can fail.
"""

import warnings

import numpy as np
import pytest
from conftest import FAST
from scipy.stats import betabinom

from skmsc import ConformalGuaranteeWarning, KNNDetector, MeanShiftedContrastiveDetector
from skmsc._estimators._base import conformal_pvalues_from
from skmsc.datasets import DEFAULT_FASHION_MNIST_DIR

LEVELS = (0.05, 0.1, 0.2)


def test_p_values_count_the_training_scores_as_low_or_lower():
    calibration = np.array([-5.0, -4.0, -4.0, -1.0])
    p = conformal_pvalues_from(calibration, [-6.0, -4.0, -3.0, 0.0])
    np.testing.assert_allclose(p, [1 / 5, 4 / 5, 4 / 5, 1.0])  # ties count as "as low"


def test_detector_p_values_use_the_leave_one_out_training_scores():
    rng = np.random.default_rng(0)
    X, X_new = rng.normal(size=(200, 3)), rng.normal(size=(50, 3))
    det = KNNDetector().fit(X)
    scores = det.score_samples(X_new)
    expected = [(1 + np.sum(det.train_scores_ <= s)) / 201 for s in scores]
    np.testing.assert_allclose(det.conformal_pvalues(X_new), expected)
    assert det.conformal_pvalues([[50.0, 50.0, 50.0]])[0] == 1 / 201
    state = dict(det.__dict__)
    det.conformal_pvalues(X_new)
    assert det.__dict__.keys() == state.keys()  # scoring changes nothing


def _flagged_interval(n, m, alpha, confidence=0.999):
    """Two-sided interval of the fraction of m new normals with p <= alpha (n calibration)."""
    rank = int(np.floor(alpha * (n + 1)))
    tail = (1 - confidence) / 2
    low, high = betabinom.ppf([tail, 1 - tail], m, rank, n + 1 - rank)
    return low / m, high / m


def _check_guarantee(pool, n_train):
    """Fit on n_train random normals of ``pool``, test p-values on the rest."""
    order = np.random.default_rng(0).permutation(len(pool))
    train, held_out = pool[order[:n_train]], pool[order[n_train:]]
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", epochs=0, image_size=32, batch_size=128, random_state=0
    ).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConformalGuaranteeWarning)  # pretrained: exact
        p = det.conformal_pvalues(held_out)
    self_inclusive = conformal_pvalues_from(det.score_samples(train),
                                            det.score_samples(held_out))
    for alpha in LEVELS:
        low, high = _flagged_interval(n_train, len(held_out), alpha)
        flagged = np.mean(p <= alpha)
        assert low <= flagged <= high, (alpha, flagged, low, high)
        # Calibrated on scores where each image is its own neighbour: far too many flags.
        assert np.mean(self_inclusive <= alpha) > high, alpha


@pytest.mark.skipif(not DEFAULT_FASHION_MNIST_DIR.is_dir(),
                    reason="needs `apt-get install dataset-fashion-mnist`")
def test_false_alarm_guarantee_on_held_out_fashion_mnist_trousers():
    from skmsc.datasets import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    pool = np.concatenate([train.images[train.labels == 1], test.images[test.labels == 1]])
    _check_guarantee(pool, n_train=2000)  # 5000 held-out trousers


def test_false_alarm_guarantee_on_held_out_defect_free_solar_cells():
    from skmsc.datasets import load_elpv

    split = load_elpv()
    pool = np.concatenate([split.X_train, split.X_test[split.y_test == 1]])  # defect-free
    _check_guarantee(pool, n_train=900)  # 608 held-out cells


def test_fine_tuned_network_warns_that_the_guarantee_is_not_exact(digits):
    images, labels = digits
    det = MeanShiftedContrastiveDetector(**FAST, epochs=1, early_stopping=False).fit(
        images[labels == 0][:16])
    assert det.best_epoch_ == 1
    with pytest.warns(ConformalGuaranteeWarning, match="best_epoch_=1"):
        p = det.conformal_pvalues(images[:5])
    assert np.all((p > 0) & (p <= 1))


def test_a_reduced_gallery_warns_that_the_guarantee_is_approximate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    reduced = KNNDetector(gallery_size=0.1, random_state=0).fit(X)
    with pytest.warns(ConformalGuaranteeWarning, match="gallery_size=0.1 \\(kmeans\\)"):
        reduced.conformal_pvalues(X[:3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KNNDetector().fit(X).conformal_pvalues(X[:3])
