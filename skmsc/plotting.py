"""Figures for inspecting a detector: nearest normal images, score histogram, ROC curve.

Needs matplotlib (``pip install "skmsc[plot]"``); imported only when a function is called.
Every function returns the matplotlib object it drew on, for further styling or saving.
The functions take what ``fit`` takes (image arrays, or image files and PIL images), and
a fitted detector or a :class:`~sklearn.pipeline.Pipeline` ending in one. Figures they
create use constrained layout, so a saved figure keeps its axis labels and legends.
"""

from __future__ import annotations

import math

import numpy as np

from .data.files import as_image_files
from .model_selection import is_normal

__all__ = ["plot_detector_scores", "plot_nearest_normals", "plot_roc_curve",
           "plot_score_histogram"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "skmsc.plotting needs matplotlib: pip install 'skmsc[plot]' (or matplotlib)."
        ) from exc
    return plt


def _show(ax, image, title):
    image = np.asarray(image)
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
    else:
        ax.imshow(image if image.dtype == np.uint8 else np.clip(image, 0, 1))
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


class _Images:
    """Random access to the images of an array or of an image collection (decoded on demand,
    as ``fit`` reads them: EXIF orientation applied, RGB)."""

    def __init__(self, X):
        self.files = as_image_files(X)
        self.array = None if self.files is not None else np.asarray(X)

    def __len__(self):
        return len(self.files) if self.files is not None else len(self.array)

    def __getitem__(self, index):
        index = int(index)
        return self.files.decode(index) if self.files is not None else self.array[index]


def _final_step(detector):
    """(the detector that scores, a function giving its input from X): for a Pipeline, its
    last step and the transform of the steps before it."""
    steps = getattr(detector, "steps", None)
    if steps is not None:
        head = detector[:-1]
        return detector[-1], (lambda X: head.transform(X) if len(head) else X)
    return detector, (lambda X: X)


def plot_nearest_normals(detector, X_query, X_train, *, n_neighbors=3, scores=None,
                         labels=None, query_index=None, max_rows=6, figsize=None):
    """Each query image next to its nearest training (normal) images.

    Each query is shown with its index (and label and score, when given), then its
    ``n_neighbors`` nearest training images, each titled with its training index and
    squared feature distance. More than ``max_rows`` queries wrap into further columns.

    Parameters
    ----------
    detector : fitted estimator with ``kneighbors``, or a Pipeline ending in one
        :class:`~skmsc.MeanShiftedContrastiveDetector`, :class:`~skmsc.KNNDetector`, or
        ``Pipeline([..., ("knn", KNNDetector())])``.
    X_query : array-like of shape (n_queries, height, width[, 3]) or sequence of image paths
        Images to explain (for instance the ones flagged as anomalous), in any form
        ``fit`` takes: an array, or image files / PIL images.
    X_train : array-like or sequence of image paths
        The images the detector was fitted on, in the same order.
    n_neighbors : int, default=3
        Neighbours shown per query.
    scores : array-like of shape (n_queries,), default=None
        Shown in the query's title (e.g. its ``decision_function``).
    labels : array-like of shape (n_queries,), default=None
        Shown in the query's title (e.g. its true class).
    query_index : array-like of int of shape (n_queries,), default=None
        The number shown for each query, e.g. its row in the test set when ``X_query`` is
        a selection of it; by default its position in ``X_query``.
    max_rows : int, default=6
        Queries per column of the grid; more queries wrap into further columns.
    figsize : tuple, default=None
        Figure size in inches; by default 1.6 inches per image.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from skmsc import MeanShiftedContrastiveDetector
    >>> from skmsc.plotting import plot_nearest_normals
    >>> digits = load_digits()
    >>> X_train = digits.images[:60][digits.target[:60] == 0] / 16
    >>> det = MeanShiftedContrastiveDetector(
    ...     "efficientnet_lite0", epochs=0, image_size=32, random_state=0
    ... ).fit(X_train)
    >>> fig = plot_nearest_normals(det, digits.images[60:62] / 16, X_train, n_neighbors=2,
    ...                            labels=digits.target[60:62], query_index=[60, 61])
    >>> len(fig.axes), fig.axes[0].get_title().splitlines()[0]
    (6, 'query #60 (label 3)')
    """
    plt = _pyplot()
    final, features_of = _final_step(detector)
    queries, train = _Images(X_query), _Images(X_train)
    n_train = len(final.train_scores_)
    if len(train) != n_train:
        raise ValueError(
            f"X_train has {len(train)} images but the detector was fitted on {n_train}: "
            "pass the training images in the order they were given to fit."
        )
    if getattr(final, "gallery_", None) is not getattr(final, "train_features_", None):
        raise ValueError(
            f"This detector's gallery was reduced (gallery_size={final.gallery_size!r}): "
            "its nearest neighbours are k-means centres or coreset vectors, not training "
            "images in order. Refit with gallery_size=None to plot the nearest normals."
        )
    distances, indices = final.kneighbors(features_of(X_query), n_neighbors)
    n_queries, per_query = len(queries), n_neighbors + 1
    for name, values in (("scores", scores), ("labels", labels), ("query_index", query_index)):
        if values is not None and len(values) != n_queries:
            raise ValueError(f"{name} has {len(values)} values but X_query {n_queries}.")
    n_rows = min(n_queries, max_rows)
    n_groups = math.ceil(n_queries / n_rows)
    n_cols = n_groups * per_query
    fig, axes = plt.subplots(
        n_rows, n_cols, squeeze=False, layout="constrained",
        figsize=figsize or (1.6 * n_cols, 1.75 * n_rows),
    )
    for ax in axes.ravel():
        ax.set_axis_off()  # cells past the last query stay empty
    for q in range(n_queries):
        row, col = q % n_rows, (q // n_rows) * per_query
        number = q if query_index is None else query_index[q]
        title = f"query #{number}"
        if labels is not None:
            title += f" (label {labels[q]})"
        if scores is not None:
            title += f"\nscore {scores[q]:.3g}"
        axes[row, col].set_axis_on()
        _show(axes[row, col], queries[q], title)
        for k in range(n_neighbors):
            index = indices[q, k]
            ax = axes[row, col + k + 1]
            ax.set_axis_on()
            _show(ax, train[index], f"train #{index}\nd²={distances[q, k]:.3g}")
    return fig


def _legend_above(ax):
    """The legend in a row above the plot, where it covers no bars."""
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02, 1.0, 0.1), mode="expand",
              ncols=3, fontsize=8, borderaxespad=0.0, frameon=False)


def plot_score_histogram(scores, y=None, *, threshold=None, bins=30, ax=None):
    """Histogram of scores, split into normal and anomalous samples when ``y`` is given.

    Scores alone do not say which threshold applies to them: pass it as ``threshold``, or
    use :func:`plot_detector_scores`, which computes the scores and draws the detector's
    own threshold.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Higher = more normal: ``decision_function`` (whose threshold is 0) or
        ``score_samples`` (whose threshold is ``offset_``).
    y : array-like of shape (n_samples,), default=None
        1 for normal samples, 0 or -1 for anomalies.
    threshold : float or None, default=None
        Drawn as a vertical line, labelled with the fraction of these samples below it
        (flagged). ``None`` draws none.
    bins : int, default=30
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure (constrained layout) by default.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmsc.plotting import plot_score_histogram
    >>> ax = plot_score_histogram([0.5, 0.2, 0.1, -0.8, -1.5], y=[1, 1, 1, 0, 0],
    ...                           threshold=0.0)
    >>> ax.get_legend().get_texts()[-1].get_text()
    'threshold (40.0% flagged)'
    """
    plt = _pyplot()
    scores = np.asarray(scores, dtype=float)
    ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5), layout="constrained")[1]
    edges = np.histogram_bin_edges(scores, bins=bins)
    if y is None:
        ax.hist(scores, bins=edges, label="samples")
    else:
        normal = is_normal(y)
        if len(normal) != len(scores):
            raise ValueError(f"scores has {len(scores)} values but y has {len(normal)}.")
        ax.hist(scores[normal], bins=edges, alpha=0.6, label="normal")
        ax.hist(scores[~normal], bins=edges, alpha=0.6, label="anomaly")
    if threshold is not None:
        flagged = np.mean(scores < threshold)
        ax.axvline(threshold, color="k", linestyle="--",
                   label=f"threshold ({flagged:.1%} flagged)")
    ax.set_xlabel("score (higher = more normal)")
    ax.set_ylabel("samples")
    _legend_above(ax)
    return ax


def plot_detector_scores(detector, X, y=None, *, method="decision_function", bins=30,
                         ax=None):
    """Histogram of a detector's scores of ``X`` with the detector's own threshold.

    Parameters
    ----------
    detector : fitted detector, or a Pipeline ending in one
    X : array-like or sequence of image paths
        Samples in any form ``fit`` takes.
    y : array-like of shape (n_samples,), default=None
        1 for normal samples, 0 or -1 for anomalies.
    method : {"decision_function", "score_samples"}, default="decision_function"
        Which scores to draw; the threshold line is 0 for ``decision_function`` and
        ``offset_`` for ``score_samples``: where ``predict`` changes its answer.
    bins : int, default=30
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure (constrained layout) by default.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmsc import KNNDetector
    >>> from skmsc.plotting import plot_detector_scores
    >>> rng = np.random.default_rng(0)
    >>> det = KNNDetector(contamination=0.1).fit(rng.normal(size=(500, 2)))
    >>> ax = plot_detector_scores(det, rng.normal(size=(2000, 2)), method="score_samples")
    >>> bool(ax.lines[0].get_xdata()[0] == det.offset_), ax.get_xlabel()
    (True, 'score_samples (higher = more normal)')
    """
    if method not in ("decision_function", "score_samples"):
        raise ValueError(f"method must be 'decision_function' or 'score_samples', "
                         f"got {method!r}.")
    final, _ = _final_step(detector)
    scores = getattr(detector, method)(X)
    threshold = 0.0 if method == "decision_function" else final._current_offset()
    ax = plot_score_histogram(scores, y, threshold=threshold, bins=bins, ax=ax)
    ax.set_xlabel(f"{method} (higher = more normal)")
    return ax


def plot_roc_curve(y, scores, *, ax=None, name=None):
    """ROC curve with "normal" as the positive class (scores higher for normal samples).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        1 for normal samples, 0 or -1 for anomalies.
    scores : array-like of shape (n_samples,)
        ``decision_function`` or ``score_samples``.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure by default.
    name : str, default=None
        Legend label of the curve.

    Returns
    -------
    display : sklearn.metrics.RocCurveDisplay
        Holds ``fpr``, ``tpr``, ``roc_auc`` and the ``ax_`` drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmsc.plotting import plot_roc_curve
    >>> display = plot_roc_curve([1, 1, 0, 0], [0.9, 0.4, 0.5, -1.0])
    >>> float(display.roc_auc)
    0.75
    """
    plt = _pyplot()
    from sklearn.metrics import RocCurveDisplay

    ax = ax if ax is not None else plt.subplots(figsize=(4.6, 4.4), layout="constrained")[1]
    display = RocCurveDisplay.from_predictions(
        is_normal(y), np.asarray(scores, dtype=float), pos_label=True, ax=ax, name=name,
        plot_chance_level=True,
    )
    ax.set_xlabel("false positive rate (anomalies passed as normal)")
    ax.set_ylabel("true positive rate (normals kept)")
    return display
