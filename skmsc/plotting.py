"""Figures for inspecting a detector: nearest normal images, score histogram, ROC curve.

Needs matplotlib (``pip install "skmsc[plot]"``); imported only when a function is called.
Every function returns the matplotlib object it drew on, for further styling or saving.
"""

from __future__ import annotations

import numpy as np

from .model_selection import is_normal

__all__ = ["plot_nearest_normals", "plot_roc_curve", "plot_score_histogram"]


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


def plot_nearest_normals(detector, X_query, X_train, *, n_neighbors=3, scores=None,
                         figsize=None):
    """Each query image next to its nearest training (normal) images.

    Row ``i`` shows ``X_query[i]`` and then its ``n_neighbors`` nearest training images,
    each titled with its training index and squared feature distance.

    Parameters
    ----------
    detector : fitted estimator with ``kneighbors``
        :class:`~skmsc.MeanShiftedContrastiveDetector` or :class:`~skmsc.KNNDetector`.
    X_query : array-like of shape (n_queries, height, width[, 3])
        Images to explain (for instance the ones flagged as anomalous).
    X_train : array-like of shape (n_train, height, width[, 3])
        The images the detector was fitted on, in the same order.
    n_neighbors : int, default=3
        Neighbours shown per query.
    scores : array-like of shape (n_queries,), default=None
        Shown in the query's title (e.g. its ``decision_function``).
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
    >>> fig = plot_nearest_normals(det, digits.images[60:62] / 16, X_train, n_neighbors=2)
    >>> len(fig.axes)
    6
    """
    plt = _pyplot()
    X_query, X_train = np.asarray(X_query), np.asarray(X_train)
    n_train = len(detector.train_scores_)
    if len(X_train) != n_train:
        raise ValueError(
            f"X_train has {len(X_train)} images but the detector was fitted on {n_train}: "
            "pass the training images in the order they were given to fit."
        )
    if getattr(detector, "gallery_", None) is not getattr(detector, "train_features_", None):
        raise ValueError(
            f"This detector's gallery was reduced (gallery_size={detector.gallery_size!r}): "
            "its nearest neighbours are k-means centres or coreset vectors, not training "
            "images in order. Refit with gallery_size=None to plot the nearest normals."
        )
    distances, indices = detector.kneighbors(X_query, n_neighbors)
    n_rows, n_cols = len(X_query), n_neighbors + 1
    fig, axes = plt.subplots(
        n_rows, n_cols, squeeze=False, figsize=figsize or (1.6 * n_cols, 1.7 * n_rows)
    )
    for row in range(n_rows):
        title = "query" if scores is None else f"query\nscore {scores[row]:.3g}"
        _show(axes[row, 0], X_query[row], title)
        for col in range(n_neighbors):
            index = indices[row, col]
            _show(axes[row, col + 1], X_train[index],
                  f"train #{index}\nd²={distances[row, col]:.3g}")
    fig.tight_layout()
    return fig


def plot_score_histogram(scores, y=None, *, threshold=0.0, bins=30, ax=None):
    """Histogram of scores, split into normal and anomalous samples when ``y`` is given.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Higher = more normal: ``decision_function`` (threshold 0) or ``score_samples``
        (threshold ``offset_``).
    y : array-like of shape (n_samples,), default=None
        1 for normal samples, 0 or -1 for anomalies.
    threshold : float or None, default=0.0
        Drawn as a vertical line; samples left of it are flagged. ``None`` draws none.
    bins : int, default=30
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure by default.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmsc.plotting import plot_score_histogram
    >>> ax = plot_score_histogram([0.5, 0.2, 0.1, -0.8, -1.5], y=[1, 1, 1, 0, 0])
    >>> ax.get_xlabel() != ""
    True
    """
    plt = _pyplot()
    scores = np.asarray(scores, dtype=float)
    ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]
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
    ax.legend(fontsize=8)
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

    ax = ax if ax is not None else plt.subplots(figsize=(4, 4))[1]
    display = RocCurveDisplay.from_predictions(
        is_normal(y), np.asarray(scores, dtype=float), pos_label=True, ax=ax, name=name,
        plot_chance_level=True,
    )
    ax.set_xlabel("false positive rate (anomalies passed as normal)")
    ax.set_ylabel("true positive rate (normals kept)")
    return display
