"""k-nearest-neighbour search over the training features, and the scoring rule.

The score of the method is minus the sum of squared Euclidean distances to the ``k``
nearest training features. Both searches return squared distances so the two agree up to
recall. The rule itself is written once, in :class:`KNNScorer`: scoring, the
leave-one-out threshold, anomaly maps, the fine-tuning safeguard and the exported ONNX
graph all apply it.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "AUTO_EXACT_MAX_SAMPLES", "NNDESCENT_EPSILON_BY_SIZE", "ExactIndex", "KNNScorer",
    "NNDescentIndex",
    "default_epsilon", "knn_scores", "make_index", "resolve_knn_algorithm",
]

#: ``knn_algorithm="auto"`` uses exact search up to this many training vectors and
#: pynndescent's approximate index above it. benchmarks/speed.py (section knn,
#: docs/performance.md) put the crossover of fit's kNN cost (index build + leave-one-out
#: queries of the training set) at about 21,000 real 1280-d features on 2 CPU cores.
AUTO_EXACT_MAX_SAMPLES = 20_000
# Peak memory of one exact-search chunk of the (queries x gallery) distance matrix.
DEFAULT_MEMORY_BUDGET_BYTES = 256 * 2**20
# Query rows whose k distances are recomputed in float64 at a time.
_RECOMPUTE_ROWS = 1024
# Queries searched together when the gallery has to be split into blocks.
_QUERY_BLOCK_ROWS = 1024


def _exact_squared_distances(queries, gallery, indices) -> np.ndarray:
    """Squared distances to the found neighbours, recomputed from the vectors in float64.

    The search ranks by the fast expansion |q|^2 + |g|^2 - 2 q.g in float32, whose
    rounding depends on how queries are batched and which loses precision on unit
    vectors; recomputing the few chosen distances makes each score exact and independent
    of batch size and of the search algorithm.
    """
    distances = np.empty(indices.shape, dtype=np.float64)
    # Row blocks keep the float64 copies small (1024 x d x 8 bytes) at any query count.
    for start in range(0, len(indices), _RECOMPUTE_ROWS):
        rows = slice(start, start + _RECOMPUTE_ROWS)
        block = queries[rows].astype(np.float64)
        for j in range(indices.shape[1]):
            diff = gallery[indices[rows, j]].astype(np.float64) - block
            distances[rows, j] = np.einsum("md,md->m", diff, diff)
    return distances


class ExactIndex:
    """Brute-force search with chunked matrix products; memory bounded by ``memory_budget``.

    Parameters
    ----------
    gallery : ndarray of shape (n, d)
    memory_budget : int
        Bytes allowed for one chunk of the distance matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.neighbors import ExactIndex
    >>> index = ExactIndex(np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]))
    >>> distances, indices = index.kneighbors(np.array([[0.9, 0.0]]), k=2)
    >>> indices.tolist(), distances.round(2).tolist()
    ([[1, 0]], [[0.01, 0.81]])
    >>> index.kneighbors(index.gallery.numpy(), k=1, exclude_self=True)[1].ravel().tolist()
    [1, 0, 1]
    """

    def __init__(self, gallery: np.ndarray, memory_budget: int = DEFAULT_MEMORY_BUDGET_BYTES):
        self.gallery = torch.from_numpy(np.ascontiguousarray(gallery, dtype=np.float32))
        self.gallery_sq_norms = self.gallery.pow(2).sum(dim=1)
        self.memory_budget = memory_budget

    def _blocks(self, n_queries: int) -> tuple[int, int]:
        """Rows of queries and of the gallery searched at once, within ``memory_budget``.

        Two float32 matrices of the block's size live at once (products and distances).
        A gallery that fits next to ``_QUERY_BLOCK_ROWS`` queries is searched whole;
        a larger one is split into blocks so the query block stays large: each pass then
        reads the gallery once per ``_QUERY_BLOCK_ROWS`` queries (matrix products) instead
        of once per handful of queries (memory-bound matrix-vector products).
        """
        cells = max(1, self.memory_budget // 8)
        n = max(1, len(self.gallery))
        if n * _QUERY_BLOCK_ROWS <= cells:
            return max(1, cells // n), n
        query_rows = min(_QUERY_BLOCK_ROWS, max(1, n_queries))
        return query_rows, max(1, cells // query_rows)

    def kneighbors(self, queries: np.ndarray, k: int, *, exclude_self: bool = False):
        """Squared distances (ascending, float64) and indices of the ``k`` nearest.

        With ``exclude_self``, ``queries`` must be the gallery itself and each row's own
        entry is skipped: the leave-one-out neighbours of the training set.
        """
        queries_t = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        if exclude_self and len(queries_t) != len(self.gallery):
            raise ValueError("exclude_self=True needs the gallery itself as the queries.")
        distances = np.empty((len(queries_t), k), dtype=np.float64)
        indices = np.empty((len(queries_t), k), dtype=np.int64)
        query_rows, gallery_rows = self._blocks(len(queries_t))
        with torch.inference_mode():
            for start in range(0, len(queries_t), query_rows):
                chunk = queries_t[start : start + query_rows]
                found = self._search(chunk, start, k, gallery_rows, exclude_self)
                exact = _exact_squared_distances(chunk.numpy(), self.gallery.numpy(), found)
                order = np.argsort(exact, axis=1, kind="stable")
                distances[start : start + len(chunk)] = np.take_along_axis(exact, order, 1)
                indices[start : start + len(chunk)] = np.take_along_axis(found, order, 1)
        return distances, indices

    def _search(self, chunk, start, k, gallery_rows, exclude_self) -> np.ndarray:
        """Indices of the ``k`` nearest gallery rows of each query in ``chunk``.

        The gallery is scanned in blocks; a running best ``k`` (distances and indices) is
        merged with each block's best ``k``.
        """
        chunk_sq = chunk.pow(2).sum(dim=1, keepdim=True)
        best_d = best_i = None
        for g0 in range(0, len(self.gallery), gallery_rows):
            block = self.gallery[g0 : g0 + gallery_rows]
            d2 = chunk_sq + self.gallery_sq_norms[g0 : g0 + len(block)]
            d2.addmm_(chunk, block.T, alpha=-2.0).clamp_(min=0.0)
            if exclude_self:
                # Each query's own row, where it falls inside this gallery block.
                own = torch.arange(start, start + len(chunk)) - g0
                inside = (own >= 0) & (own < len(block))
                d2[torch.arange(len(chunk))[inside], own[inside]] = float("inf")
            top = torch.topk(d2, min(k, len(block)), dim=1, largest=False, sorted=True)
            top_i = top.indices + g0
            if best_d is None:
                best_d, best_i = top.values, top_i
            else:
                merged_d = torch.cat([best_d, top.values], dim=1)
                merged_i = torch.cat([best_i, top_i], dim=1)
                keep = torch.topk(merged_d, min(k, merged_d.shape[1]), dim=1,
                                  largest=False, sorted=True).indices
                best_d, best_i = merged_d.gather(1, keep), merged_i.gather(1, keep)
        return best_i.numpy()


class NNDescentIndex:
    """Approximate search with pynndescent; the graph is built when the index is made.

    Parameters
    ----------
    gallery : ndarray of shape (n, d)
    n_neighbors : int, default=30
        Degree of the search graph (not the query k); higher is slower and more exact.
    epsilon : float or None, default=None
        Search breadth at query time; higher is slower and more exact. ``None``:
        :func:`default_epsilon` of the gallery size, which kept recall@2 >= 0.99 on real
        1280-d features at 10k, 100k and 1M vectors (``docs/performance.md``), where
        pynndescent's own default, 0.1, gave 0.83 at 10k.
    random_state : int
        Seed of the graph construction.
    n_jobs : int or None
        Threads used to build the graph.

    Examples
    --------
    The first index in a process compiles pynndescent's code with numba, which takes
    tens of seconds:

    >>> import numpy as np
    >>> from skmsc.neighbors import NNDescentIndex
    >>> gallery = np.random.default_rng(0).normal(size=(500, 16))
    >>> index = NNDescentIndex(gallery, random_state=0)  # doctest: +SKIP
    >>> distances, indices = index.kneighbors(gallery[:3], k=2)  # doctest: +SKIP
    >>> indices[:, 0].tolist()  # doctest: +SKIP
    [0, 1, 2]
    """

    def __init__(self, gallery, n_neighbors=30, epsilon=None, random_state=0, n_jobs=None):
        import pynndescent  # compiled with numba on first use: imported only when needed

        self.gallery = np.ascontiguousarray(gallery, dtype=np.float32)
        self.epsilon = default_epsilon(len(self.gallery)) if epsilon is None else epsilon
        self.index = pynndescent.NNDescent(
            self.gallery,
            metric="euclidean",
            n_neighbors=min(n_neighbors, len(self.gallery) - 1),
            random_state=random_state,
            n_jobs=n_jobs,
        )
        self.index.prepare()

    def kneighbors(self, queries: np.ndarray, k: int, *, exclude_self: bool = False):
        """Like :meth:`ExactIndex.kneighbors`, found approximately."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n_query = k + 1 if exclude_self else k
        found, _ = self.index.query(queries, k=n_query, epsilon=self.epsilon)
        found = found.astype(np.int64)
        if exclude_self:
            own = np.arange(len(queries))[:, None]
            is_self = found == own
            # Drop the row's own entry, or the farthest one if the search missed it.
            no_self = ~is_self.any(axis=1)
            is_self[no_self, -1] = True
            keep = ~is_self
            found = found[keep].reshape(len(queries), k)
        exact = _exact_squared_distances(queries, self.gallery, found)
        order = np.argsort(exact, axis=1, kind="stable")
        return np.take_along_axis(exact, order, 1), np.take_along_axis(found, order, 1)


#: (gallery size, query epsilon) pairs measured by ``benchmarks/speed.py`` (section knn,
#: real 1280-d features, degree-30 graph): the smallest epsilon tried that kept recall@2
#: >= 0.99. 10k and 100k: 0.5 (recall 0.9995, 0.995); 1M: 1.0 (0.9935; 0.5 gave 0.93).
NNDESCENT_EPSILON_BY_SIZE = ((100_000, 0.5), (1_000_000, 1.0))


def default_epsilon(n_samples: int) -> float:
    """The pynndescent query epsilon for a gallery of ``n_samples`` vectors.

    The measured value at and below 100k, interpolated linearly in ``log(n_samples)``
    up to 1M, and the 1M value beyond (not measured there).

    Examples
    --------
    >>> from skmsc.neighbors import default_epsilon
    >>> default_epsilon(50_000), round(default_epsilon(316_228), 2), default_epsilon(10**7)
    (0.5, 0.75, 1.0)
    """
    (n_low, eps_low), (n_high, eps_high) = NNDESCENT_EPSILON_BY_SIZE
    if n_samples <= n_low:
        return eps_low
    if n_samples >= n_high:
        return eps_high
    fraction = (np.log(n_samples) - np.log(n_low)) / (np.log(n_high) - np.log(n_low))
    return float(eps_low + fraction * (eps_high - eps_low))


def resolve_knn_algorithm(algorithm: str, n_samples: int) -> str:
    """'exact' or 'nndescent': what 'auto' means for a gallery of ``n_samples``.

    Examples
    --------
    >>> from skmsc.neighbors import resolve_knn_algorithm
    >>> resolve_knn_algorithm("auto", 1_000), resolve_knn_algorithm("auto", 100_000)
    ('exact', 'nndescent')
    """
    if algorithm == "auto":
        return "exact" if n_samples <= AUTO_EXACT_MAX_SAMPLES else "nndescent"
    return algorithm


def make_index(gallery, algorithm="exact", random_state=0):
    """Build the search index that ``algorithm`` names ('exact' or 'nndescent').

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.neighbors import make_index
    >>> index = make_index(np.eye(3), "exact")
    >>> index.kneighbors(np.array([[1.0, 0.0, 0.0]]), k=1)[1].tolist()
    [[0]]
    """
    if algorithm == "exact":
        return ExactIndex(gallery)
    if algorithm == "nndescent":
        return NNDescentIndex(gallery, random_state=random_state)
    raise ValueError(f"Unknown kNN algorithm {algorithm!r}; use 'exact' or 'nndescent'.")


class KNNScorer:
    """The method's scoring rule: minus the summed squared distance to the ``k`` nearest.

    The one place the rule is written. :meth:`from_distances` turns the squared distances
    to the ``n_neighbors`` nearest gallery vectors into normality scores (higher = more
    normal); it is written with operations numpy arrays and torch tensors share, so the
    same line scores in numpy (:meth:`scores`, the leave-one-out threshold, the
    safeguard's proxy), in torch with gradients (:meth:`torch_scores`, anomaly maps) and in
    the exported ONNX graph. A new rule (e.g. the mean of the ``k`` distances) is a change
    of :meth:`from_distances` alone.

    Parameters
    ----------
    n_neighbors : int
        ``k``: how many nearest gallery vectors a score uses.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skmsc.neighbors import KNNScorer, make_index
    >>> scorer = KNNScorer(2)
    >>> scorer.scores(make_index(np.eye(3)), np.array([[1.0, 0.0, 0.0]])).tolist()
    [-2.0]
    >>> scorer.from_distances(np.array([[0.5, 1.5]])).tolist()
    [-2.0]
    >>> z, neighbours = torch.zeros(1, 2), torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    >>> scorer.torch_scores(z, neighbours).tolist()
    [-5.0]
    """

    def __init__(self, n_neighbors: int):
        self.n_neighbors = int(n_neighbors)

    def __repr__(self) -> str:
        return f"KNNScorer(n_neighbors={self.n_neighbors})"

    @staticmethod
    def from_distances(squared_distances):
        """Normality scores ``(n,)`` from the squared distances ``(n, k)`` to the nearest
        (ascending); numpy or torch in, the same kind out."""
        return -squared_distances.sum(1)

    def scores(self, index, features: np.ndarray) -> np.ndarray:
        """Normality scores (float64) of ``features`` against the gallery of ``index``."""
        distances, _ = index.kneighbors(features, self.n_neighbors)
        return self.from_distances(distances)

    def torch_scores(self, z, neighbours):
        """Normality scores of the features ``z`` ``(n, d)`` against their chosen
        ``neighbours`` ``(n, k, d)``, in torch (differentiable in ``z``)."""
        diff = neighbours - z.unsqueeze(1)
        return self.from_distances((diff * diff).sum(2))


def knn_scores(index, features: np.ndarray, n_neighbors: int) -> np.ndarray:
    """The method's normality scores: :meth:`KNNScorer.scores` with ``n_neighbors``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.neighbors import knn_scores, make_index
    >>> knn_scores(make_index(np.eye(3)), np.array([[1.0, 0.0, 0.0]]), 2).tolist()
    [-2.0]
    """
    return KNNScorer(n_neighbors).scores(index, features)
