"""A label-free choice of the fine-tuning epoch: held-out normals against synthetic anomalies.

Fine-tuning can make detection worse, and users have no anomalies to notice it with. So a
seeded fraction of the normal images is held out of the fine-tuning (not of the final
gallery). After every epoch, and for the pretrained network (epoch 0), the held-out images
and seven synthetic anomalies made from each are scored by the kNN distance to the
fine-tuning images' features: three *local* ones (a patch cut from another held-out image
and pasted, a thin scar of another image's colour, a 50/50 blend with another image: what a
defect changes) and four *global* ones (a quarter turn, upside down, the quadrants
shuffled, a mosaic of four normals: what a new object class changes). Local anomalies
alone did not see the gains of fine-tuning on natural photos (``benchmarks/epoch_rules.py``).
The ROC-AUC
of normal against synthetic is the proxy; the detector keeps the epoch with the highest
proxy, and keeps a fine-tuned epoch only if it beats the pretrained network by ``MIN_GAIN``
*and* by more than the proxy's own noise: the one-sided 95 % paired bootstrap bound of the
gain (over the held-out images and their synthetic anomalies) must lie above zero. Where
synthetic anomalies are hard to tell from normals (proxy near 0.5) the noise is large, so
the pretrained network is kept.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ..neighbors import ExactIndex, KNNScorer

#: A fine-tuned epoch must beat the pretrained network's proxy ROC-AUC by this much.
MIN_GAIN = 0.005
#: Held-out images used at most (their network inputs are kept in memory as float16).
MAX_VALIDATION_IMAGES = 256
#: Fewer held-out images than this make the proxy too noisy to trust.
MIN_VALIDATION_IMAGES = 10
#: Paired bootstrap resamples for the noise of a proxy gain, and the bound's quantile.
BOOTSTRAP_ROUNDS = 200
LOWER_QUANTILE = 5.0
#: Neighbours of the proxy's kNN score: the paper's k, whatever the detector's, so the
#: kept network (and MeanShiftedFeatures' output) does not depend on n_neighbors.
PROXY_NEIGHBORS = 2


def validation_rows(n_samples: int, fraction: float, seed: int):
    """``(train_rows, validation_rows)``, sorted; ``None`` if too few images to hold out.

    ``fraction`` of the images, at most ``MAX_VALIDATION_IMAGES``, and at least 10 kept
    for training. A fraction that gives fewer than ``MIN_VALIDATION_IMAGES`` is raised to
    that many if they are at most a third of the images (so ``None`` below 30 images).
    """
    n_validation = min(MAX_VALIDATION_IMAGES, int(round(fraction * n_samples)),
                       n_samples - MIN_VALIDATION_IMAGES)
    if n_validation < MIN_VALIDATION_IMAGES:
        if MIN_VALIDATION_IMAGES > n_samples // 3:
            return None
        n_validation = MIN_VALIDATION_IMAGES
    rng = np.random.default_rng(seed)
    held_out = np.sort(rng.choice(n_samples, size=n_validation, replace=False))
    return np.setdiff1d(np.arange(n_samples), held_out), held_out


#: The safeguard's kinds of synthetic anomaly (its default; the order fixes the draws).
SAFEGUARD_KINDS = ("cut-paste", "scar", "blend")
#: Local kinds only, each with a mask of the pixels it replaced: what the anomaly-map
#: benchmark pastes onto normal images (a blend changes the whole image, so it has no
#: location to find).
LOCAL_KINDS = ("cut-paste", "scar", "blob")
_KINDS = {"cut-paste", "scar", "blend", "blob"}


def synthetic_anomalies(images: torch.Tensor, generator: torch.Generator, *,
                        kinds=SAFEGUARD_KINDS, return_masks: bool = False):
    """One synthetic anomaly per image of a ``(n, 3, H, W)`` batch.

    Each image gets, drawn at random among ``kinds``: a rectangle cut from another image
    of the batch (``"cut-paste"``, 2-15 % of the area, aspect 0.3-3.3), a thin straight
    scar (``"scar"``, 20-50 % of the side long) or an elliptical blob (``"blob"``, 1-8 %
    of the area) in the colour of a pixel of another image, or a 50/50 blend with another
    image (``"blend"``). Works in whatever space ``images`` is in (normalised network
    inputs for the safeguard, pixels in [0, 1] for the benchmark): every operation copies
    or mixes pixels. The safeguard's default kinds draw exactly the random numbers they
    always drew, so its choice of epoch does not depend on the other options.

    With ``return_masks``, also returns a bool ``(n, H, W)`` mask of the pixels each
    anomaly replaced (all of them for a blend). A replaced pixel may keep its value (a
    patch of background pasted onto background): compare the images to find the pixels
    that changed.
    """
    kinds = tuple(kinds)
    if not kinds or not set(kinds) <= _KINDS:
        raise ValueError(f"kinds must be a non-empty selection of {sorted(_KINDS)}, "
                         f"got {kinds!r}")
    n, _, height, width = images.shape
    out = images.clone()
    masks = torch.zeros((n, height, width), dtype=torch.bool)
    if n < 2:
        raise ValueError("synthetic anomalies need at least 2 images")

    def uniform(low, high):
        return low + (high - low) * torch.rand((), generator=generator).item()

    def integer(high):  # 0 <= value < high
        return int(torch.randint(0, max(1, high), (), generator=generator))

    drawn = torch.randint(0, len(kinds), (n,), generator=generator).tolist()
    partners = ((torch.arange(n) + torch.randint(1, n, (n,), generator=generator)) % n).tolist()
    rows = torch.arange(height, dtype=torch.float32).view(-1, 1)
    cols = torch.arange(width, dtype=torch.float32).view(1, -1)
    for i, (k, j) in enumerate(zip(drawn, partners, strict=True)):
        kind = kinds[k]
        if kind == "cut-paste":
            area = uniform(0.02, 0.15) * height * width
            aspect = math.exp(uniform(math.log(0.3), math.log(3.3)))
            h = min(height, max(1, round(math.sqrt(area * aspect))))
            w = min(width, max(1, round(math.sqrt(area / aspect))))
            sy, sx = integer(height - h + 1), integer(width - w + 1)
            ty, tx = integer(height - h + 1), integer(width - w + 1)
            out[i, :, ty : ty + h, tx : tx + w] = images[j, :, sy : sy + h, sx : sx + w]
            masks[i, ty : ty + h, tx : tx + w] = True
        elif kind == "scar":
            side = min(height, width)
            length = uniform(0.2, 0.5) * side
            half_width = max(0.5, uniform(0.01, 0.025) * side)
            angle = uniform(0.0, math.pi)
            along, across = _rotated(rows, cols, uniform(0.2, 0.8) * height,
                                     uniform(0.2, 0.8) * width, angle)
            mask = (along.abs() <= length / 2) & (across.abs() <= half_width)
            colour = images[j, :, integer(height), integer(width)]
            out[i][:, mask] = colour.view(-1, 1).to(out.dtype)
            masks[i] = mask
        elif kind == "blob":
            area = uniform(0.01, 0.08) * height * width
            aspect = math.exp(uniform(math.log(0.5), math.log(2.0)))
            semi_a = math.sqrt(area * aspect / math.pi)
            semi_b = math.sqrt(area / aspect / math.pi)
            angle = uniform(0.0, math.pi)
            along, across = _rotated(rows, cols, uniform(0.2, 0.8) * height,
                                     uniform(0.2, 0.8) * width, angle)
            mask = (along / semi_a) ** 2 + (across / semi_b) ** 2 <= 1.0
            colour = images[j, :, integer(height), integer(width)]
            out[i][:, mask] = colour.view(-1, 1).to(out.dtype)
            masks[i] = mask
        else:  # blend
            out[i] = 0.5 * images[i] + 0.5 * images[j]
            masks[i] = True
    return (out, masks) if return_masks else out


def _rotated(rows, cols, cy: float, cx: float, angle: float):
    """Pixel coordinates along and across a direction ``angle`` through ``(cy, cx)``."""
    along = (rows - cy) * math.sin(angle) + (cols - cx) * math.cos(angle)
    across = (rows - cy) * math.cos(angle) - (cols - cx) * math.sin(angle)
    return along, across


def proxy_scores(features: np.ndarray, anomaly_features: np.ndarray, train_rows,
                 held_out_rows) -> tuple[np.ndarray, np.ndarray]:
    """kNN normality scores of the held-out normals and of the synthetic anomalies.

    ``features`` are all training images' features; the gallery is ``train_rows`` of them.
    """
    index = ExactIndex(np.ascontiguousarray(features[train_rows]))
    scorer = KNNScorer(PROXY_NEIGHBORS)
    return scorer.scores(index, features[held_out_rows]), scorer.scores(index, anomaly_features)


def auc(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """ROC-AUC of normal (positive) against anomalous: P(normal scores higher), ties 1/2."""
    return float(roc_auc_score(np.r_[np.ones(len(normal_scores)), np.zeros(len(anomaly_scores))],
                               np.r_[normal_scores, anomaly_scores]))


def proxy_auc(features, anomaly_features, train_rows, held_out_rows) -> float:
    """The proxy: :func:`auc` of :func:`proxy_scores`."""
    return auc(*proxy_scores(features, anomaly_features, train_rows, held_out_rows))


def _curve_auc(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """:func:`auc` by the same arithmetic as scikit-learn's ``roc_auc_score``, without its
    input checks (which took ~1.7 ms a call: 0.7 s of a bootstrap's 400 calls).

    The ROC curve's corners (exact counts, collinear points dropped as ``roc_curve``
    does), then the trapezoidal rule over them: equal to :func:`auc` bit for bit
    (``tests/nn/test_safeguard.py`` checks it). Only for what :func:`_plain` accepts.
    """
    scores = np.concatenate([normal_scores, anomaly_scores])
    truth = np.r_[np.ones(len(normal_scores)), np.zeros(len(anomaly_scores))]
    order = np.argsort(scores, kind="stable")[::-1]  # ties share one threshold anyway
    scores, truth = scores[order], truth[order]
    ends = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # last row of each value
    tps = np.cumsum(truth)[ends]
    fps = 1 + ends - tps
    if len(fps) > 2:
        corners = np.flatnonzero(np.r_[True, np.diff(fps, 2) != 0, True]
                                 | np.r_[True, np.diff(tps, 2) != 0, True])
        fps, tps = fps[corners], tps[corners]
    fpr, tpr = np.r_[0.0, fps] / fps[-1], np.r_[0.0, tps] / tps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _plain(scores) -> bool:
    """Non-empty, finite, real 1-D arrays of (normal, anomaly) scores: what
    :func:`_curve_auc` may score in place of :func:`auc` (the rest goes to ``auc``)."""
    return all(isinstance(s, np.ndarray) and s.ndim == 1 and s.size > 0
               and s.dtype.kind in "fiu" and bool(np.isfinite(s).all()) for s in scores)


def gain_lower_bound(epoch_scores, base_scores, seed: int = 0) -> float:
    """One-sided 95 % paired bootstrap bound of ``auc(epoch) - auc(base)``.

    Both arguments are ``(normal_scores, anomaly_scores)`` of the same images; each
    resample draws the same held-out images (and, separately, synthetic anomalies) for
    both epochs.
    """
    rng = np.random.default_rng(seed)
    n_normal, n_anomalous = len(epoch_scores[0]), len(epoch_scores[1])
    score = _curve_auc if _plain(epoch_scores) and _plain(base_scores) else auc
    gains = np.empty(BOOTSTRAP_ROUNDS)
    for b in range(BOOTSTRAP_ROUNDS):
        i, j = rng.integers(0, n_normal, n_normal), rng.integers(0, n_anomalous, n_anomalous)
        gains[b] = (score(epoch_scores[0][i], epoch_scores[1][j])
                    - score(base_scores[0][i], base_scores[1][j]))
    return float(np.percentile(gains, LOWER_QUANTILE))


def best_epoch(scores_by_epoch) -> int:
    """The epoch to keep from each epoch's ``(normal_scores, anomaly_scores)``.

    The fine-tuned epoch with the highest proxy if it beats epoch 0 by ``MIN_GAIN`` and
    its gain's bootstrap bound lies above zero; else 0 (the pretrained network).
    """
    aucs = [auc(*scores) for scores in scores_by_epoch]
    if len(aucs) < 2:
        return 0
    best = 1 + int(np.argmax(aucs[1:]))  # the earliest of equal scores
    if aucs[best] < aucs[0] + MIN_GAIN:
        return 0
    return best if gain_lower_bound(scores_by_epoch[best], scores_by_epoch[0]) > 0 else 0


#: Globally altered images: what a *semantic* anomaly changes (the layout of the whole
#: image, not one region). MSC's augmentations never rotate, flip upside down or re-arrange
#: an image, so a network that learnt more of the normal class tells these apart better.
GLOBAL_KINDS = ("rotate", "flip", "shuffle", "mosaic")


def global_anomalies(images: torch.Tensor, generator: torch.Generator, kind: str) -> torch.Tensor:
    """One globally altered copy of each image of a ``(n, 3, H, W)`` batch.

    ``"rotate"``: a quarter turn, either way (half a turn for non-square images);
    ``"flip"``: upside down; ``"shuffle"``: the four quadrants re-arranged (none in its
    place); ``"mosaic"``: the top-left quadrant kept, the other three taken from three other
    images (a mix of several normals).
    """
    n, _, height, width = images.shape
    if kind == "rotate":
        if height != width:
            return torch.rot90(images, 2, dims=(2, 3))
        turns = torch.randint(0, 2, (n,), generator=generator).tolist()
        return torch.stack([torch.rot90(image, 1 if t else 3, dims=(1, 2))
                            for image, t in zip(images, turns, strict=True)])
    if kind == "flip":
        return torch.flip(images, dims=(2,))
    h, w = height // 2, width // 2
    boxes = [(slice(0, h), slice(0, w)), (slice(0, h), slice(w, 2 * w)),
             (slice(h, 2 * h), slice(0, w)), (slice(h, 2 * h), slice(w, 2 * w))]
    out = images.clone()
    if kind == "shuffle":
        # The derangements of 4 quadrants that keep none in place (9 of the 24 orders).
        orders = [p for p in itertools.permutations(range(4)) if all(p[i] != i for i in range(4))]
        picks = torch.randint(0, len(orders), (n,), generator=generator).tolist()
        for i, pick in enumerate(picks):
            for target, source in enumerate(orders[pick]):
                out[i, :, boxes[target][0], boxes[target][1]] = (
                    images[i, :, boxes[source][0], boxes[source][1]])
        return out
    if kind == "mosaic":
        if n < 4:
            raise ValueError("a mosaic needs at least 4 images")
        for i in range(n):
            others = (i + 1 + torch.randperm(n - 1, generator=generator)[:3]) % n
            for target, source in enumerate([i, *others.tolist()]):
                out[i, :, boxes[target][0], boxes[target][1]] = (
                    images[source, :, boxes[target][0], boxes[target][1]])
        return out
    raise ValueError(f"kind must be one of {GLOBAL_KINDS}, got {kind!r}")


#: The synthetic anomalies the safeguard makes of *every* held-out image: one of each local
#: kind (what a defect changes) and one of each global kind (what a new object class
#: changes). One anomaly of each kind per image, rather than one local and one global drawn
#: at random, steadies the proxy enough that its bootstrap bound sees the gains of
#: fine-tuning on natural photos (``benchmarks/epoch_rules.py``, "local + global proxy").
PROXY_KINDS = (*SAFEGUARD_KINDS, *GLOBAL_KINDS)


def proxy_anomalies(images: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    """One synthetic anomaly of ``kind`` (one of ``PROXY_KINDS``) per held-out image.

    Drawn from a generator seeded by ``seed`` and the kind alone, so every epoch sees the
    same anomalies (the epochs' proxies are compared pairwise) and they can be made again
    one kind at a time instead of being kept in memory. ``"mosaic"`` needs 4 images.
    """
    generator = torch.Generator().manual_seed(seed + PROXY_KINDS.index(kind))
    if kind in GLOBAL_KINDS:
        return global_anomalies(images, generator, kind)
    return synthetic_anomalies(images, generator, kinds=(kind,))
