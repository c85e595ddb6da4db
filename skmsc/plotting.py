"""Figures for inspecting a detector: nearest normals, anomaly maps, scores, ROC curve.

Needs matplotlib (``pip install "skmsc[plot]"``); imported only when a function is called.
Every function returns the matplotlib object it drew on, for further styling or saving.
"""

from __future__ import annotations

import inspect

import numpy as np

from .model_selection import is_normal

__all__ = [
    "plot_anomaly_maps", "plot_nearest_normals", "plot_roc_curve", "plot_score_histogram",
]


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


def _pixels(images, index: int) -> np.ndarray:
    """Image ``index`` of an array or an image collection (files, PIL images) for display."""
    from .data.files import as_image_files

    files = as_image_files(images)
    return np.asarray(images[index]) if files is None else files.decode(index)


def _image_name(images, index: int) -> str:
    from pathlib import Path

    from .data.files import as_image_files

    files = as_image_files(images)
    return f"image {index}" if files is None else Path(files.names[index]).name


def _overlay(ax, image_map: np.ndarray, cmap: str, alpha: float) -> None:
    """The map drawn over the image, scaled to its maximum; transparent where it is 0."""
    import matplotlib

    peak = float(image_map.max())
    scaled = image_map / peak if peak > 0 else np.zeros_like(image_map)
    rgba = matplotlib.colormaps[cmap](scaled)
    rgba[..., 3] = alpha * scaled
    ax.imshow(rgba, interpolation="bilinear")


def plot_anomaly_maps(detector, X, X_train=None, *, method=None, maps=None, decisions=None,
                      alpha=0.7, cmap="inferno", figsize=None):
    """Each image with its anomaly map, its score and decision, and its nearest normal image.

    Row ``i`` shows ``X[i]`` (titled with its score), the same image overlaid with the map
    of where that score comes from (titled with the threshold decision: ``anomaly`` when
    ``decision_function < 0``), and, given ``X_train``, its nearest training image with
    the squared feature distance. Each map is scaled to its own maximum (given in the
    title) and drawn transparent where it is 0, such as outside the central crop the
    network sees.

    Parameters
    ----------
    detector : fitted MeanShiftedContrastiveDetector
        Fitted on images (an array or files).
    X : array-like of shape (n_images, height, width[, 3]), or sequence of image paths / \
            PIL images
        The images to explain (for instance the ones flagged as anomalous).
    X_train : array-like or sequence of image paths / PIL images, default=None
        The images the detector was fitted on, in the order given to ``fit`` (only the
        nearest ones are read). ``None`` leaves the nearest-normal column out.
    method : {"gradient", "occlusion"}, default=None
        How the maps are computed (see
        :meth:`~skmsc.MeanShiftedContrastiveDetector.anomaly_maps`); ``None`` means its
        default.
    maps : sequence of ndarray, default=None
        Maps already computed by ``detector.anomaly_maps(X)``; ``None`` computes them.
    decisions : array-like of shape (n_images,), default=None
        ``detector.decision_function(X)`` if already computed (so a figure shows exactly
        the values a report lists); ``None`` computes it.
    alpha : float, default=0.7
        Opacity of the map where it is largest.
    cmap : str, default="inferno"
        Matplotlib colour map of the maps.
    figsize : tuple, default=None
        Figure size in inches; by default 2.2 inches per image.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmsc import MeanShiftedContrastiveDetector
    >>> from skmsc.plotting import plot_anomaly_maps
    >>> rng = np.random.default_rng(0)
    >>> X_train = rng.integers(100, 140, size=(12, 64, 64), dtype=np.uint8)
    >>> det = MeanShiftedContrastiveDetector(
    ...     "efficientnet_lite0", epochs=0, image_size=64, batch_size=16, random_state=0
    ... ).fit(X_train)
    >>> scratched = X_train[:1].copy()
    >>> scratched[0, 30:33, 8:56] = 255
    >>> fig = plot_anomaly_maps(det, scratched, X_train)
    >>> len(fig.axes)  # image, image with map, nearest normal image
    3
    """
    plt = _pyplot()
    n_images = len(X)
    if X_train is not None and len(X_train) != len(detector.train_scores_):
        raise ValueError(
            f"X_train has {len(X_train)} images but the detector was fitted on "
            f"{len(detector.train_scores_)}: pass the training images in the order they "
            "were given to fit, or X_train=None to leave the nearest normal image out."
        )
    if method is None:  # the detector's default, named in the titles
        method = inspect.signature(detector.anomaly_maps).parameters["method"].default
    if maps is None:
        maps = detector.anomaly_maps(X, method=method)
    decisions = (detector.decision_function(X) if decisions is None
                 else np.asarray(decisions, dtype=float))
    for name, values in (("maps", maps), ("decisions", decisions)):
        if len(values) != n_images:
            raise ValueError(f"{name} has {len(values)} entries but X has {n_images} images.")
    n_cols = 2 if X_train is None else 3
    if X_train is not None:
        distances, indices = detector.kneighbors(X, 1)
    fig, axes = plt.subplots(n_images, n_cols, squeeze=False,
                             figsize=figsize or (2.2 * n_cols, 2.4 * n_images))
    for row in range(n_images):
        image = _pixels(X, row)
        decision = decisions[row]
        verdict = "anomaly" if decision < 0 else "normal"
        _show(axes[row, 0], image, f"{_image_name(X, row)}\n"
              f"score {decision + detector.offset_:.3g}")
        _show(axes[row, 1], image, f"{method} map (max {float(np.max(maps[row])):.2g})\n"
              f"{verdict}: decision {decision:+.3g}")
        _overlay(axes[row, 1], np.asarray(maps[row]), cmap, alpha)
        if verdict == "anomaly":
            axes[row, 1].title.set_color("tab:red")
        if X_train is not None:
            index = int(indices[row, 0])
            _show(axes[row, 2], _pixels(X_train, index),
                  f"nearest normal #{index}\nd²={distances[row, 0]:.3g}")
    fig.tight_layout()
    return fig
