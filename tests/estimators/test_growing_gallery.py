"""partial_fit (a gallery that grows without fine-tuning) and gallery_size (a smaller one)."""

import warnings

import numpy as np
import pytest
from conftest import FAST
from sklearn.exceptions import NotFittedError

from skmsc import KNNDetector, MeanShiftedContrastiveDetector, MeanShiftedFeatures
from skmsc._gallery import leave_one_out_distances, reduce_gallery
from skmsc.neighbors import ExactIndex

NETWORK = dict(FAST, precision="float32", epochs=1, early_stopping=False)


@pytest.fixture(scope="module")
def zeros_and_ones(digits):
    X, y = digits
    images = (X * 255).round().astype(np.uint8)
    return images[y == 0][:30], images[y == 0][30:50], images[:60]


# ------------------------------------------------------------------ partial_fit
def test_partial_fit_equals_a_fresh_knn_fit_on_the_union(zeros_and_ones):
    first, more, test = zeros_and_ones
    det = MeanShiftedContrastiveDetector(**NETWORK, knn_algorithm="exact").fit(first)
    weights = {k: v.clone() for k, v in det.encoder_.state_dict().items()}
    center = det.center_.copy()
    assert det.partial_fit(more) is det
    # The same network, fitted on its own (same seeds), gives the features independently.
    features = MeanShiftedFeatures(**NETWORK).fit(first)
    union = np.concatenate([features.transform(first), features.transform(more)])
    fresh = KNNDetector(n_neighbors=det.n_neighbors, knn_algorithm="exact").fit(union)
    np.testing.assert_array_equal(det.train_features_, union)
    np.testing.assert_array_equal(det.train_scores_, fresh.train_scores_)
    assert det.offset_ == fresh.offset_
    np.testing.assert_array_equal(det.score_samples(test),
                                  fresh.score_samples(features.transform(test)))
    # Nothing was trained.
    assert all((det.encoder_.state_dict()[k] == v).all() for k, v in weights.items())
    np.testing.assert_array_equal(det.center_, center)


def test_partial_fit_on_feature_vectors_and_unfitted_detectors():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=(15, 5))
    grown = KNNDetector().fit(a).partial_fit(b)
    fresh = KNNDetector().fit(np.vstack([a, b]))
    assert grown.offset_ == fresh.offset_
    np.testing.assert_array_equal(grown.score_samples(a), fresh.score_samples(a))
    # On an unfitted detector it fits.
    for detector in (KNNDetector(), MeanShiftedContrastiveDetector()):
        started = detector.partial_fit(a)
        assert started.offset_ == KNNDetector().fit(a).offset_


def test_partial_fit_checks_its_input_and_changes_nothing_on_error(zeros_and_ones):
    first, _, _ = zeros_and_ones
    det = KNNDetector().fit(np.random.default_rng(0).normal(size=(20, 4)))
    before = det.__dict__.copy()
    with pytest.raises(ValueError, match="features"):
        det.partial_fit(np.ones((3, 5)))
    assert det.__dict__.keys() == before.keys()
    assert det.train_features_ is before["train_features_"] and det.offset_ == before["offset_"]
    image_det = MeanShiftedContrastiveDetector(**NETWORK).fit(first)
    with pytest.raises(ValueError, match=r"X\[None\]"):
        image_det.partial_fit(first[0])  # one image, not a batch
    assert len(image_det.train_features_) == len(first)
    # Images of another size are resized as in fit (issue #25 item 3), as files are.
    assert len(image_det.partial_fit(first[:2, :4]).train_features_) == len(first) + 2
    with pytest.raises(NotFittedError):
        KNNDetector().score_samples(first.reshape(len(first), -1))
    # Parameters changed after fit are checked by partial_fit too.
    with pytest.raises(ValueError, match="gallery_size"):
        det.set_params(gallery_size=-1).partial_fit(np.ones((3, 4)))


# ------------------------------------------------------------------ gallery_size
@pytest.mark.parametrize("reduction", ["kmeans", "coreset"])
def test_gallery_size_shrinks_the_searched_gallery(reduction):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    det = KNNDetector(gallery_size=0.1, gallery_reduction=reduction, random_state=0).fit(X)
    assert det.gallery_.shape == (20, 6) and det.train_features_.shape == (200, 6)
    assert det.train_scores_.shape == (200,)
    queries = rng.normal(size=(30, 6))
    expected = -ExactIndex(det.gallery_).kneighbors(queries, 2)[0].sum(axis=1)
    np.testing.assert_allclose(det.score_samples(queries), expected)
    if reduction == "coreset":  # real training vectors
        assert all(np.any(np.all(X == row, axis=1)) for row in det.gallery_)
    assert KNNDetector(gallery_size=20, gallery_reduction=reduction,
                       random_state=0).fit(X).gallery_.shape == (20, 6)
    assert KNNDetector(gallery_size=1.0).fit(X).gallery_ is not None
    full = KNNDetector(gallery_size=1.0).fit(X)
    assert full.gallery_ is full.train_features_


def test_a_coreset_gallery_warns_that_its_threshold_flags_too_few_new_normals():
    # The bias the warning describes: asked for 10 %, a 10 % coreset flags about half as
    # many fresh normal samples (5 to 6 % here), k-means about as many (12 to 14 %).
    rng = np.random.default_rng(0)
    X, fresh = rng.normal(size=(2000, 16)), rng.normal(size=(4000, 16))
    with pytest.warns(UserWarning, match="gallery_reduction='coreset'"):
        coreset = KNNDetector(gallery_size=0.1, gallery_reduction="coreset",
                              contamination=0.1, random_state=0).fit(X)
    assert np.mean(coreset.predict(fresh) == -1) < 0.075
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kmeans = KNNDetector(gallery_size=0.1, contamination=0.1, random_state=0).fit(X)
        KNNDetector(gallery_size=1.0, gallery_reduction="coreset").fit(X)  # nothing reduced
    assert 0.075 < np.mean(kmeans.predict(fresh) == -1) < 0.15


def test_leave_one_out_on_a_coreset_drops_only_the_members_own_entry():
    X = np.array([[0.0, 0], [0.0, 1], [0.0, 3], [0.0, 6], [0.0, 10]], dtype=np.float32)
    gallery = reduce_gallery(X, 3, "coreset", seed=0)
    members = set(gallery.rows.tolist())
    d = leave_one_out_distances(ExactIndex(gallery.vectors), X, gallery, k=1)[:, 0]
    for i, x in enumerate(X):
        others = [gallery.rows[j] for j in range(3) if gallery.rows[j] != i]
        assert d[i] == min(float(((X[j] - x) ** 2).sum()) for j in others), (i, members)


def test_leave_one_out_on_kmeans_uses_the_centre_without_the_sample():
    X = np.array([[0.0, 0], [0.0, 2], [10, 0], [10, 2], [10, 4], [50, 50]], dtype=np.float32)
    gallery = reduce_gallery(X, 3, "kmeans", seed=0)
    d = leave_one_out_distances(ExactIndex(gallery.vectors), X, gallery, k=1)[:, 0]
    # (0, 0) without itself: its cluster's centre is (0, 2), 4 away in squared distance.
    assert d[0] == pytest.approx(4.0)
    # (10, 2) without itself: the centre of (10, 0) and (10, 4) is (10, 2): distance 0.
    assert d[3] == pytest.approx(0.0)
    # (50, 50) alone in its cluster: the nearest other centre.
    assert d[5] == pytest.approx(((np.array([50, 50]) - [10, 2]) ** 2).sum())


def test_gallery_size_is_validated_and_survives_save_and_load(tmp_path):
    X = np.random.default_rng(1).normal(size=(50, 4))
    for bad in (0, -1, 1.5, "half"):
        with pytest.raises(ValueError, match="gallery_size"):
            KNNDetector(gallery_size=bad).fit(X)
    with pytest.raises(ValueError, match="n_neighbors=2 needs at least 3"):
        KNNDetector(gallery_size=2).fit(X)
    with pytest.raises(ValueError, match="gallery_reduction"):
        KNNDetector(gallery_size=10, gallery_reduction="random").fit(X)
    det = MeanShiftedContrastiveDetector(gallery_size=10, random_state=0).fit(X)
    loaded = MeanShiftedContrastiveDetector.load(det.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.gallery_, det.gallery_)
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    assert loaded.offset_ == det.offset_ and loaded.gallery_size == 10
    full = KNNDetector().fit(X)
    reloaded = KNNDetector.load(full.save(tmp_path / "full"))
    assert reloaded.gallery_ is reloaded.train_features_  # stored once


def test_partial_fit_reduces_the_union_again():
    rng = np.random.default_rng(2)
    det = KNNDetector(gallery_size=0.2, random_state=0).fit(rng.normal(size=(50, 4)))
    det.partial_fit(rng.normal(size=(50, 4)))
    assert det.gallery_.shape == (20, 4) and det.train_features_.shape == (100, 4)


def test_nearest_normals_plot_refuses_a_reduced_gallery(zeros_and_ones):
    pytest.importorskip("matplotlib")
    from skmsc.plotting import plot_nearest_normals

    first, _, test = zeros_and_ones
    det = MeanShiftedContrastiveDetector(**NETWORK, gallery_size=10).fit(first)
    with pytest.raises(ValueError, match="gallery was reduced"):
        plot_nearest_normals(det, test[:2], first)


def test_cli_fit_offers_gallery_size_as_a_count_or_a_fraction():
    from skmsc.cli import _parser

    def parsed(value):
        args = ["fit", "d", "-o", "m", "--gallery-size", value, "--gallery-reduction",
                "coreset"]
        return _parser(args).parse_args(args)

    assert parsed("600").gallery_size == 600 and isinstance(parsed("600").gallery_size, int)
    assert parsed("0.1").gallery_size == 0.1
    assert parsed("0.1").gallery_reduction == "coreset"
    with pytest.raises(SystemExit):
        parsed("a tenth")
