"""skmsc.plotting.plot_anomaly_maps draws what it claims to (figure data, Agg backend)."""

import copy

import matplotlib
import numpy as np
import pytest
from PIL import Image

from skmsc import MeanShiftedContrastiveDetector
from skmsc.plotting import plot_anomaly_maps

matplotlib.use("Agg")  # figures are closed after each test (conftest.py)


@pytest.fixture(scope="module")
def textures():
    """Grass tiles (scikit-image) to fit on, and two held-out tiles, one with a blob."""
    from skimage import data

    grass = data.grass()
    tiles = np.stack([grass[r : r + 48, c : c + 48] for r in range(0, 465, 24)
                      for c in range(0, 465, 24)])
    train, queries = tiles[:60], tiles[60:62].copy()
    queries[1, 10:22, 20:34] = 0
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", epochs=0, image_size=96, batch_size=16, precision="float32",
        random_state=0,
    ).fit(train)
    return det, train, queries


def test_rows_show_image_map_score_decision_and_nearest_normal(textures):
    det, train, queries = textures
    fig = plot_anomaly_maps(det, queries, train)
    axes = np.array(fig.axes).reshape(2, 3)
    decisions = det.decision_function(queries)
    scores = det.score_samples(queries)
    distances, indices = det.kneighbors(queries, 1)
    maps = det.anomaly_maps(queries)
    for row in range(2):
        np.testing.assert_array_equal(axes[row, 0].images[0].get_array(), queries[row])
        assert f"score {scores[row]:.3g}" in axes[row, 0].get_title()
        title = axes[row, 1].get_title()
        verdict = "anomaly" if decisions[row] < 0 else "normal"
        assert f"{verdict}: decision {decisions[row]:+.3g}" in title
        assert f"max {maps[row].max():.2g}" in title
        overlay = np.asarray(axes[row, 1].images[1].get_array())
        # Opacity follows the map: opaque where it is largest, clear where it is 0.
        alpha = overlay[..., 3]
        np.testing.assert_allclose(alpha, 0.7 * maps[row] / maps[row].max(), atol=1e-6)
        np.testing.assert_array_equal(axes[row, 2].images[0].get_array(),
                                      train[indices[row, 0]])
        assert f"#{indices[row, 0]}" in axes[row, 2].get_title()
        assert f"{distances[row, 0]:.3g}" in axes[row, 2].get_title()
    assert decisions[1] < 0  # the blob is flagged
    assert axes[1, 1].title.get_color() == "tab:red"


def test_given_maps_scores_and_threshold_are_drawn_as_given(textures):
    det, _, queries = textures
    maps = np.zeros((2, 48, 48), np.float32)
    maps[:, 5, 5] = 2.0
    fig = plot_anomaly_maps(det, queries, maps=maps, scores=[-1.5, 0.25], threshold=-1.0,
                            method="occlusion")
    assert len(fig.axes) == 4  # no nearest-normal column without X_train
    assert "score -1.5" in fig.axes[0].get_title()
    assert "anomaly: decision -0.5" in fig.axes[1].get_title()
    assert "occlusion map (max 2)" in fig.axes[1].get_title()
    assert "normal: decision +1.25" in fig.axes[3].get_title()
    alpha = np.asarray(fig.axes[1].images[1].get_array())[..., 3]
    assert alpha[5, 5] == pytest.approx(0.7) and alpha.sum() == pytest.approx(0.7)


def test_files_are_shown_with_their_names(textures, tmp_path):
    det, train, queries = textures
    path = tmp_path / "blob.png"
    Image.fromarray(queries[1]).save(path)
    fig = plot_anomaly_maps(det, [str(path)], train, method="occlusion")
    assert fig.axes[0].get_title().startswith("blob.png\n")
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(shown[..., 0], queries[1])  # decoded as RGB


def test_wrong_inputs_are_refused(textures):
    det, train, queries = textures
    with pytest.raises(ValueError, match="fitted on 60"):
        plot_anomaly_maps(det, queries, train[:10])
    with pytest.raises(ValueError, match="maps has 1 entries but X has 2"):
        plot_anomaly_maps(det, queries, maps=[np.zeros((48, 48))])
    with pytest.raises(ValueError, match="method="):
        plot_anomaly_maps(det, queries, method="saliency")
    from skmsc import KNNDetector

    with pytest.raises(TypeError, match="needs a MeanShiftedContrastiveDetector"):
        plot_anomaly_maps(KNNDetector().fit(np.zeros((5, 3))), queries)


def test_nearest_normals_are_refused_for_a_reduced_gallery(textures):
    det, train, queries = textures
    small = copy.deepcopy(det).set_params(gallery_size=0.1).fit(train)
    with pytest.raises(ValueError, match="gallery was reduced"):
        plot_anomaly_maps(small, queries, train)
    assert len(plot_anomaly_maps(small, queries).axes) == 4  # image and map only
