"""Figures for inspecting a detector: nearest normals, anomaly maps, scores, ROC curve.

Needs matplotlib (``pip install "skmsc[plot]"``); imported only when a function is called.
Every function returns the matplotlib object it drew on, for further styling or saving.
The functions take what ``fit`` takes (image arrays, or image files and PIL images), and
a fitted detector or a :class:`~sklearn.pipeline.Pipeline` ending in one. Figures they
create use constrained layout, so a saved figure keeps its axis labels and legends.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._estimators import DEFAULT_MAP_METHOD
from .data.files import as_image_files
from .model_selection import _warn_if_auc_looks_inverted, is_normal

__all__ = ["plot_anomaly_maps", "plot_detector_scores", "plot_nearest_normals",
           "plot_roc_curve", "plot_score_histogram"]


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


def check_neighbours_are_training_images(detector) -> None:
    """A ``ValueError`` if ``kneighbors`` rows are not training images (a reduced gallery)."""
    if getattr(detector, "gallery_", None) is not getattr(detector, "train_features_", None):
        raise ValueError(
            f"This detector's gallery was reduced (gallery_size={detector.gallery_size!r}): "
            "its nearest neighbours are k-means centres or coreset vectors, not training "
            "images in order. Refit with gallery_size=None to plot the nearest normals."
        )


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
    check_neighbours_are_training_images(final)
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
    threshold = 0.0 if method == "decision_function" else final.current_offset()
    ax = plot_score_histogram(scores, y, threshold=threshold, bins=bins, ax=ax)
    ax.set_xlabel(f"{method} (higher = more normal)")
    return ax


def plot_roc_curve(y, scores, *, normal_label=1, ax=None, name=None):
    """ROC curve with "normal" as the positive class (scores higher for normal samples).

    A ``UserWarning`` is given when the ROC-AUC is below 0.3, far below chance: the labels
    (PyOD's 1 = anomaly?) or the scores (anomaly scores?) are probably the wrong way round.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        1 for normal samples, 0 or -1 for anomalies.
    scores : array-like of shape (n_samples,)
        ``decision_function`` or ``score_samples``.
    normal_label : int, str or bool, default=1
        The label of the normal samples in ``y``. With another value than 1, every other
        label is an anomaly: ``normal_label=0`` takes PyOD's labels (1 = anomaly).
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

    normal = is_normal(y, normal_label=normal_label)
    scores = np.asarray(scores, dtype=float)
    ax = ax if ax is not None else plt.subplots(figsize=(4.6, 4.4), layout="constrained")[1]
    display = RocCurveDisplay.from_predictions(
        normal, scores, pos_label=True, ax=ax, name=name, plot_chance_level=True,
    )
    _warn_if_auc_looks_inverted(float(display.roc_auc))
    ax.set_xlabel("false positive rate (anomalies passed as normal)")
    ax.set_ylabel("true positive rate (normals kept)")
    return display


def _overlay(ax, image_map: np.ndarray, cmap: str, alpha: float) -> None:
    """The map drawn over the image, scaled to its maximum; transparent where it is 0."""
    import matplotlib

    peak = float(image_map.max())
    scaled = image_map / peak if peak > 0 else np.zeros_like(image_map)
    rgba = matplotlib.colormaps[cmap](scaled)
    rgba[..., 3] = alpha * scaled
    ax.imshow(rgba, interpolation="bilinear")


def plot_anomaly_maps(detector, X, X_train=None, *, method=None, maps=None, scores=None,
                      threshold=None, alpha=0.7, cmap="inferno", figsize=None):
    """Each image with its anomaly map, its score and decision, and its nearest normal image.

    Row ``i`` shows ``X[i]`` (titled with its name and score), the same image overlaid with
    the map of where that score comes from (titled with the threshold decision: ``anomaly``
    in red when the score is below the threshold), and, given ``X_train``, its nearest
    training image with the squared feature distance. Each map is scaled to its own
    maximum (given in the title) and drawn transparent where it is 0, such as outside the
    central crop the network sees.

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
    method : {"patch", "layercam", "gradient", "occlusion"}, default=None
        How the maps are computed (see
        :meth:`~skmsc.MeanShiftedContrastiveDetector.anomaly_maps`); ``None`` means its
        default.
    maps : sequence of ndarray, default=None
        Maps already computed by ``detector.anomaly_maps(X)``; ``None`` computes them.
    scores : array-like of shape (n_images,), default=None
        ``detector.score_samples(X)`` if already computed (so a figure shows exactly the
        values a report lists); ``None`` computes them.
    threshold : float, default=None
        The threshold in ``score_samples`` units; ``None`` means the detector's own
        (``offset_``, as ``predict`` uses it).
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
    if not hasattr(detector, "anomaly_maps"):
        raise TypeError(
            f"plot_anomaly_maps needs a MeanShiftedContrastiveDetector fitted on images, "
            f"not a {type(detector).__name__}."
        )
    images = _Images(X)
    n_images = len(images)
    train = None if X_train is None else _Images(X_train)
    if train is not None:
        check_neighbours_are_training_images(detector)
    if train is not None and len(train) != len(detector.train_scores_):
        raise ValueError(
            f"X_train has {len(train)} images but the detector was fitted on "
            f"{len(detector.train_scores_)}: pass the training images in the order they "
            "were given to fit, or X_train=None to leave the nearest normal image out."
        )
    if method is None:  # the detector's default, named in the titles
        method = DEFAULT_MAP_METHOD
    if maps is None:
        maps = detector.anomaly_maps(X, method=method)
    scores = (detector.score_samples(X) if scores is None
              else np.asarray(scores, dtype=float))
    threshold = detector.current_offset() if threshold is None else float(threshold)
    for name, values in (("maps", maps), ("scores", scores)):
        if len(values) != n_images:
            raise ValueError(f"{name} has {len(values)} entries but X has {n_images} images.")
    n_cols = 2 if train is None else 3
    if train is not None:
        distances, indices = detector.kneighbors(X, 1)
    fig, axes = plt.subplots(n_images, n_cols, squeeze=False, layout="constrained",
                             figsize=figsize or (2.2 * n_cols, 2.4 * n_images))
    for row in range(n_images):
        image = images[row]
        name = f"image {row}" if images.files is None else Path(images.files.names[row]).name
        decision = scores[row] - threshold
        verdict = "anomaly" if decision < 0 else "normal"
        _show(axes[row, 0], image, f"{name}\nscore {scores[row]:.3g}")
        _show(axes[row, 1], image, f"{method} map (max {float(np.max(maps[row])):.2g})\n"
              f"{verdict}: decision {decision:+.3g}")
        _overlay(axes[row, 1], np.asarray(maps[row]), cmap, alpha)
        if verdict == "anomaly":
            axes[row, 1].title.set_color("tab:red")
        if train is not None:
            index = int(indices[row, 0])
            _show(axes[row, 2], train[index],
                  f"nearest normal #{index}\nd²={distances[row, 0]:.3g}")
    return fig
