"""skmsc.plotting draws what it claims to (checked on the figure's data, Agg backend)."""

import matplotlib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from skmsc import MeanShiftedContrastiveDetector
from skmsc.plotting import plot_nearest_normals, plot_roc_curve, plot_score_histogram

matplotlib.use("Agg")  # figures are closed after each test (conftest.py)


def test_nearest_normals_shows_the_neighbours_kneighbors_returns(fitted_lite0, digits):
    X, y = digits
    X_train = X[y == 0][:48]
    queries = X[y == 3][:2]
    fig = plot_nearest_normals(fitted_lite0, queries, X_train, n_neighbors=2,
                               scores=fitted_lite0.decision_function(queries))
    distances, indices = fitted_lite0.kneighbors(queries, 2)
    axes = np.array(fig.axes).reshape(2, 3)
    for row in range(2):
        np.testing.assert_array_equal(axes[row, 0].images[0].get_array(), queries[row])
        assert "score" in axes[row, 0].get_title()
        for col in range(2):
            ax = axes[row, col + 1]
            np.testing.assert_array_equal(ax.images[0].get_array(),
                                          X_train[indices[row, col]])
            assert f"#{indices[row, col]}" in ax.get_title()
            assert f"{distances[row, col]:.3g}" in ax.get_title()


def test_nearest_normals_refuses_the_wrong_training_set(fitted_lite0, digits):
    with pytest.raises(ValueError, match="fitted on 48"):
        plot_nearest_normals(fitted_lite0, digits[0][:1], digits[0][:10])


def test_nearest_normals_on_rgb_images(small_rgb_images):
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", epochs=0, batch_size=16, image_size=32, random_state=0
    ).fit(small_rgb_images)
    fig = plot_nearest_normals(det, small_rgb_images[:1], small_rgb_images, n_neighbors=1)
    # A training image's nearest training image is itself, at distance 0.
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), small_rgb_images[0])
    assert "#0\n" in fig.axes[1].get_title()


def test_score_histogram_counts_and_threshold():
    scores = np.r_[np.linspace(-1, 2, 40), np.linspace(-4, -1, 10)]
    y = np.r_[np.ones(40), np.zeros(10)].astype(int)
    ax = plot_score_histogram(scores, y, threshold=-0.5, bins=10)
    heights = [sum(p.get_height() for p in c) for c in ax.containers]
    assert heights == [40, 10]
    line = ax.lines[0]
    assert tuple(line.get_xdata()) == (-0.5, -0.5)
    flagged = np.mean(scores < -0.5)
    assert f"{flagged:.1%} flagged" in ax.get_legend().get_texts()[-1].get_text()
    assert len(plot_score_histogram(scores, threshold=None).lines) == 0


def test_roc_curve_uses_normal_as_positive():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(60), -np.ones(20)].astype(int)
    scores = np.r_[rng.normal(1, 1, 60), rng.normal(-1, 1, 20)]
    display = plot_roc_curve(y, scores, name="det")
    fpr, tpr, _ = roc_curve(y == 1, scores)
    np.testing.assert_allclose(display.fpr, fpr)
    np.testing.assert_allclose(display.tpr, tpr)
    assert display.roc_auc == pytest.approx(roc_auc_score(y == 1, scores))
    assert display.roc_auc > 0.8
