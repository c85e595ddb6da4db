"""Item: kneighbors checks n_neighbors and, without X, gives leave-one-out neighbours."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from skmsc import KNNDetector, MeanShiftedContrastiveDetector


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(30, 5))
    return X, KNNDetector().fit(X)


def test_without_x_each_training_sample_is_searched_among_the_others(fitted):
    X, det = fitted
    distances, indices = det.kneighbors(n_neighbors=4)
    reference = NearestNeighbors(n_neighbors=4).fit(X.astype(np.float32))
    ref_distances, ref_indices = reference.kneighbors()  # scikit-learn: self left out
    np.testing.assert_array_equal(indices, ref_indices)
    assert not np.any(indices == np.arange(len(X))[:, None])
    # The distances are squared (scikit-learn's are not).
    np.testing.assert_allclose(distances, ref_distances**2, rtol=1e-5)
    # With the detector's n_neighbors, they are what the leave-one-out threshold sums.
    loo_distances, _ = det.kneighbors()
    np.testing.assert_allclose(-loo_distances.sum(axis=1), det.train_scores_, rtol=1e-12)


def test_image_detector_leave_one_out_neighbours(fitted_lite0):
    distances, indices = fitted_lite0.kneighbors()
    assert indices.shape == (len(fitted_lite0.train_features_), fitted_lite0.n_neighbors)
    assert not np.any(indices == np.arange(len(indices))[:, None])
    np.testing.assert_allclose(-distances.sum(axis=1), fitted_lite0.train_scores_)


@pytest.mark.parametrize("k, error, match", [
    (0, ValueError, "at least 1, got 0"),
    (-1, ValueError, "at least 1, got -1"),
    (True, TypeError, "must be an integer, got True"),
    (2.0, TypeError, "must be an integer, got 2.0"),
    ("3", TypeError, "must be an integer"),
    (31, ValueError, r"n_neighbors=31 is more than there are.*the 30 training samples"),
])
def test_bad_n_neighbors_with_x_is_a_clear_error(fitted, k, error, match):
    X, det = fitted
    with pytest.raises(error, match=match):
        det.kneighbors(X[:2], n_neighbors=k)


def test_n_neighbors_up_to_the_training_size(fitted):
    X, det = fitted
    distances, indices = det.kneighbors(X[:2], n_neighbors=30)
    assert sorted(indices[0].tolist()) == list(range(30))
    assert np.all(np.diff(distances, axis=1) >= 0)
    assert det.kneighbors(n_neighbors=np.int64(29))[1].shape == (30, 29)
    with pytest.raises(ValueError, match=r"other 29 training samples.*n_neighbors <= 29"):
        det.kneighbors(n_neighbors=30)


def test_kneighbors_of_an_unfitted_detector():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MeanShiftedContrastiveDetector().kneighbors()
