"""How many images ``score_samples`` handles at a time, from a memory budget.

Scoring extracts the features of one chunk of images, finds their neighbours and keeps
only their scores, so memory does not grow with the number of images scored. The
network itself sees ``batch_size`` images at a time inside a chunk; the kNN search has
its own budget (``neighbors.DEFAULT_MEMORY_BUDGET_BYTES``).
"""

from __future__ import annotations

__all__ = ["SCORING_MEMORY_BUDGET_BYTES", "scoring_chunk_rows"]

# Bytes of query features (float32) held at once while scoring: 64 MiB is 13,107
# features of EfficientNet-Lite0 (1280-d) or 8,192 of a ResNet50 (2048-d).
SCORING_MEMORY_BUDGET_BYTES = 64 * 2**20


def scoring_chunk_rows(n_features: int, batch_size: int) -> int:
    """Images per scoring chunk: a whole number of batches within the budget (>= 1 batch)."""
    rows = SCORING_MEMORY_BUDGET_BYTES // (4 * max(1, n_features))
    return max(batch_size, rows - rows % batch_size)
