"""Items: the plots take the detector's threshold, what fit takes (image files) and fitted
Pipelines; the nearest-normals grid shows indices and labels and wraps; saved figures keep
their labels; legends do not cover bars."""

import io

import matplotlib
import numpy as np
import pytest
from conftest import FAST
from sklearn.pipeline import Pipeline

from skmsc import KNNDetector, MeanShiftedContrastiveDetector, MeanShiftedFeatures
from skmsc.data.files import decode_image
from skmsc.plotting import (
    plot_detector_scores,
    plot_nearest_normals,
    plot_roc_curve,
    plot_score_histogram,
)

matplotlib.use("Agg")  # figures are closed after each test (conftest.py)


@pytest.fixture(scope="module")
def file_fitted(image_folder):
    return MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(image_folder.normal)


def test_a_histogram_of_bare_scores_draws_no_made_up_threshold(fitted_lite0, digits):
    X, y = digits
    scores = fitted_lite0.score_samples(X[:40])  # all negative: a line at 0 flags 100 %
    ax = plot_score_histogram(scores, (y[:40] == 0).astype(int))
    assert len(ax.lines) == 0
    assert all("flagged" not in t.get_text() for t in ax.get_legend().get_texts())


@pytest.mark.parametrize("method", ["decision_function", "score_samples"])
def test_detector_scores_histogram_draws_the_detectors_threshold(fitted_lite0, digits,
                                                                 method):
    X, y = digits
    ax = plot_detector_scores(fitted_lite0, X[:60], (y[:60] == 0).astype(int), method=method)
    (line,) = ax.lines
    expected = 0.0 if method == "decision_function" else fitted_lite0.offset_
    assert line.get_xdata()[0] == expected
    flagged = np.mean(fitted_lite0.predict(X[:60]) == -1)  # where predict says anomaly
    assert f"threshold ({flagged:.1%} flagged)" == ax.get_legend().get_texts()[-1].get_text()
    assert ax.get_xlabel().startswith(method)
    with pytest.raises(ValueError, match="method must be"):
        plot_detector_scores(fitted_lite0, X[:5], method="predict")


def test_nearest_normals_on_image_files(file_fitted, image_folder):
    queries = image_folder.test[:3]
    fig = plot_nearest_normals(file_fitted, queries, image_folder.normal, n_neighbors=2)
    distances, indices = file_fitted.kneighbors(queries, 2)
    axes = np.array(fig.axes).reshape(3, 3)
    for row in range(3):
        np.testing.assert_array_equal(axes[row, 0].images[0].get_array(),
                                      decode_image(queries[row]))
        for col in range(2):
            np.testing.assert_array_equal(
                axes[row, col + 1].images[0].get_array(),
                decode_image(image_folder.normal[indices[row, col]]))
            assert f"train #{indices[row, col]}\n" in axes[row, col + 1].get_title()


def test_nearest_normals_and_scores_on_a_fitted_pipeline(digits):
    X, y = digits
    X_train = X[y == 0][:30]
    pipe = Pipeline([("features", MeanShiftedFeatures(**FAST, epochs=0)),
                     ("knn", KNNDetector())]).fit(X_train)
    queries = X[y == 5][:2]
    fig = plot_nearest_normals(pipe, queries, X_train, n_neighbors=2)
    _, indices = pipe[-1].kneighbors(pipe[0].transform(queries), 2)
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), X_train[indices[0, 0]])
    ax = plot_detector_scores(pipe, X[:50], method="score_samples")
    assert ax.lines[0].get_xdata()[0] == pipe[-1].offset_


def test_grid_shows_index_and_label_and_wraps_into_columns(fitted_lite0, digits):
    X, y = digits
    picks = np.arange(100, 108)
    fig = plot_nearest_normals(fitted_lite0, X[picks], X[y == 0][:48], n_neighbors=1,
                               labels=y[picks], query_index=picks, max_rows=3,
                               scores=np.arange(8.0))
    grid = np.array(fig.axes).reshape(3, 3 * 2)  # 8 queries: 3 rows, 3 column groups
    assert grid[0, 2].get_title().startswith(f"query #103 (label {y[103]})\nscore 3")
    assert grid[1, 4].get_title().startswith(f"query #107 (label {y[107]})")
    assert not grid[2, 4].axison and not grid[2, 4].images  # the ninth cell stays empty
    with pytest.raises(ValueError, match="labels has 2 values but X_query 8"):
        plot_nearest_normals(fitted_lite0, X[picks], X[y == 0][:48], labels=[1, 2])


def _inside_saved_figure(fig, artists):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # no bbox_inches="tight": the layout must hold
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    for artist in artists:
        extent = artist.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, artist
        assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, artist


def test_saved_figures_keep_their_labels_and_legends_cover_no_bars(fitted_lite0, digits):
    X, y = digits
    labels = (y[:80] == 0).astype(int)
    ax = plot_detector_scores(fitted_lite0, X[:80], labels)
    legend = ax.get_legend()
    _inside_saved_figure(ax.figure, [ax.xaxis.label, ax.yaxis.label, legend])
    renderer = ax.figure.canvas.get_renderer()
    legend_box = legend.get_window_extent(renderer)
    bars = [p for container in ax.containers for p in container if p.get_height() > 0]
    assert bars and not any(legend_box.overlaps(p.get_window_extent(renderer)) for p in bars)
    display = plot_roc_curve(labels, fitted_lite0.decision_function(X[:80]))
    _inside_saved_figure(display.figure_, [display.ax_.xaxis.label, display.ax_.yaxis.label])
