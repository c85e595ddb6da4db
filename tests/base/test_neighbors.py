import numpy as np
import pytest

from skmsc.neighbors import ExactIndex, NNDescentIndex, make_index, resolve_knn_algorithm


def _brute_force(queries, gallery, k, exclude_self=False):
    d2 = ((queries[:, None, :].astype(np.float64) - gallery[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d2, order, axis=1), order


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(400, 12)).astype(np.float32), rng.normal(size=(50, 12))


@pytest.mark.parametrize("budget", [10**9, 4 * 400 * 8])  # one chunk; many tiny chunks
def test_exact_matches_brute_force(data, budget):
    gallery, queries = data
    index = ExactIndex(gallery, memory_budget=budget)
    distances, indices = index.kneighbors(queries, 3)
    ref_d, ref_i = _brute_force(queries, gallery, 3)
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_allclose(distances, ref_d, rtol=1e-4)
    assert distances.dtype == np.float64 and indices.dtype == np.int64


def test_exact_leave_one_out_skips_only_the_row_itself(data):
    gallery, _ = data
    gallery = np.vstack([gallery, gallery[:1]])  # a duplicate is a genuine neighbour
    index = ExactIndex(gallery, memory_budget=4 * len(gallery) * 8 * 7)
    distances, indices = index.kneighbors(gallery, 2, exclude_self=True)
    ref_d, ref_i = _brute_force(gallery, gallery, 2, exclude_self=True)
    np.testing.assert_allclose(distances, ref_d, rtol=1e-4, atol=1e-5)
    assert not np.any(indices == np.arange(len(gallery))[:, None])
    assert indices[0, 0] == len(gallery) - 1 and distances[0, 0] == pytest.approx(0, abs=1e-5)


@pytest.mark.parametrize("budget", [8 * 7 * 5, 8 * 20 * 64, 8 * 50 * 100])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_exact_search_in_gallery_blocks_matches_brute_force(data, budget, exclude_self):
    # Budgets too small for the whole gallery next to the queries: the gallery is scanned
    # in blocks of 1 to 100 rows (fewer than k in the first case) with a running top-k.
    gallery, queries = data
    queries = gallery if exclude_self else queries
    index = ExactIndex(gallery, memory_budget=budget)
    assert index._blocks(len(queries))[1] < len(gallery)
    distances, indices = index.kneighbors(queries, 3, exclude_self=exclude_self)
    ref_d, ref_i = _brute_force(queries, gallery, 3, exclude_self=exclude_self)
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_allclose(distances, ref_d, rtol=1e-4, atol=1e-6)


def test_nndescent_finds_the_exact_neighbours_on_easy_data():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(20, 8)) * 10
    gallery = (centers[rng.integers(0, 20, 600)] + rng.normal(size=(600, 8))).astype(np.float32)
    approx = NNDescentIndex(gallery, random_state=0)
    exact = ExactIndex(gallery)
    a_d, a_i = approx.kneighbors(gallery, 2, exclude_self=True)
    e_d, e_i = exact.kneighbors(gallery, 2, exclude_self=True)
    recall = np.mean([len(set(a) & set(e)) / 2 for a, e in zip(a_i, e_i, strict=True)])
    assert recall > 0.95
    assert not np.any(a_i == np.arange(len(gallery))[:, None])
    np.testing.assert_allclose(np.sort(a_d, axis=1)[:, 0] >= 0, True)


def test_auto_switches_on_size():
    assert resolve_knn_algorithm("auto", 1000) == "exact"
    assert resolve_knn_algorithm("auto", 10**7) == "nndescent"
    assert resolve_knn_algorithm("nndescent", 10) == "nndescent"
    with pytest.raises(ValueError, match="Unknown kNN algorithm"):
        make_index(np.zeros((3, 2)), "ball_tree")


def test_nndescent_recall_on_real_digit_vectors():
    # Real data (sklearn's 8x8 digits, 64-d, unit-normalised like the detector's features):
    # the default search settings must find the exact neighbours almost always, so a
    # score depends on the algorithm only where a neighbour is missed.
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    gallery, queries = X[:1500], X[1500:]
    a_d, a_i = NNDescentIndex(gallery, random_state=0).kneighbors(queries, 2)
    e_d, e_i = ExactIndex(gallery).kneighbors(queries, 2)
    recall = np.mean([len(set(a) & set(e)) / 2 for a, e in zip(a_i, e_i, strict=True)])
    assert recall >= 0.99
    same = np.all(a_i == e_i, axis=1)
    np.testing.assert_allclose(a_d[same], e_d[same], rtol=1e-12)
    assert np.all(a_d.sum(1) >= e_d.sum(1) - 1e-9)  # a miss can only raise the distance


def test_default_epsilon_follows_the_measured_sizes():
    from skmsc.neighbors import NNDESCENT_EPSILON_BY_SIZE, default_epsilon

    (n_low, eps_low), (n_high, eps_high) = NNDESCENT_EPSILON_BY_SIZE
    assert default_epsilon(10) == default_epsilon(n_low) == eps_low
    assert default_epsilon(n_high) == default_epsilon(10 * n_high) == eps_high
    between = [default_epsilon(n) for n in (2 * n_low, 4 * n_low, 8 * n_low)]
    assert eps_low < between[0] < between[1] < between[2] < eps_high


def test_nndescent_index_uses_the_size_dependent_epsilon(monkeypatch):
    # pynndescent's graph is stubbed: building a real one compiles numba code for ~30 s in
    # a fresh process (the real index is tested by the slow tests above).
    import pynndescent

    class Graph:
        def __init__(self, data, **kwargs):
            self.kwargs = kwargs

        def prepare(self):
            pass

    monkeypatch.setattr(pynndescent, "NNDescent", Graph)
    gallery = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    assert NNDescentIndex(gallery, random_state=0).epsilon == 0.5
    assert NNDescentIndex(gallery, epsilon=0.2, random_state=0).epsilon == 0.2


def test_one_scorer_object_carries_the_rule_to_every_path(monkeypatch):
    """Changing KNNScorer.from_distances alone changes scores, the leave-one-out threshold
    and the safeguard's proxy (the ONNX graph and the maps call torch_scores, which
    applies from_distances too)."""
    import torch

    from skmsc import KNNDetector
    from skmsc.neighbors import KNNScorer
    from skmsc.nn._safeguard import proxy_scores

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    before = KNNDetector(n_neighbors=3, knn_algorithm="exact").fit(X)
    before_scores = before.score_samples(X)
    monkeypatch.setattr(KNNScorer, "from_distances",
                        staticmethod(lambda d: -d.mean(1)))
    after = KNNDetector(n_neighbors=3, knn_algorithm="exact").fit(X)
    np.testing.assert_allclose(after.score_samples(X), before_scores / 3)
    np.testing.assert_allclose(after.train_scores_, before.train_scores_ / 3)
    assert after.offset_ == pytest.approx(before.offset_ / 3)
    normal, _ = proxy_scores(X.astype(np.float32), X[:5].astype(np.float32),
                             np.arange(30), np.arange(30, 40))
    distances, _ = ExactIndex(X[:30]).kneighbors(X[30:40], 2)
    np.testing.assert_allclose(normal, -distances.mean(1), rtol=1e-6)
    z, neighbours = torch.zeros(1, 2), torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    assert KNNScorer(2).torch_scores(z, neighbours).tolist() == [-2.5]
