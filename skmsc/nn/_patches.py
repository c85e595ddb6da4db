"""Patch maps: how far each place of an image is from the nearest normal patch.

The method's kNN rule, applied to places instead of whole images (as SPADE, Cohen &
Hoshen 2020, and PatchCore do): at fit, the feature map of one backbone stage is taken
from a sample of the training images, and every cell of it (a *patch*: the features of
one place, with the stage's receptive field) joins a gallery of normal patches. An image's
map is, at each cell, the Euclidean distance from its patch to the nearest gallery patch,
upsampled to the network input.

The stage is chosen by its grid, so the map's resolution does not collapse at small
image sizes: the stride-8 stage while its grid has at most :data:`PATCH_GRID` cells a
side, else the stride-16 stage (for EfficientNet-Lite0: stride 8 at 64 px, 8 x 8 cells,
and at 128 px, 16 x 16; stride 16 at 224 px, 14 x 14). At most :data:`MAX_PATCH_VALUES`
numbers are kept: beyond, a seeded random subset of the patches. Gradient maps of the
image score located synthetic defects far less often at 64 px
(``docs/guide/anomaly_maps.rst``): the image score of a 64 px network hardly moves for a
small defect, while the defect's own patches are far from every normal patch.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

from ._preprocess import eval_transform
from ._runtime import autocast
from ._training import channels_last, extract_step
from .backbones import BackboneSpec
from .model import MeanShiftedEncoder

__all__ = ["MAP_REFERENCE_IMAGES", "MAX_PATCH_VALUES", "PATCH_GRID", "PATCH_STRIDES",
           "nearest_patch_distances", "patch_channels", "patch_features", "patch_maps",
           "patch_stage", "reference_patches", "reference_rows", "stage_sides"]

#: At most this many training images give the gallery of normal patches (evenly spread
#: through the training set). 250 reference images located defects nearly as well as
#: 1,000 at 64 px (docs/guide/anomaly_maps.rst), at a quarter of the memory.
MAP_REFERENCE_IMAGES = 256
#: The largest grid (cells a side) of the stage patch maps use: a finer one multiplies
#: the patches kept and compared (at 224 px the stride-8 stage has 28 x 28 cells).
PATCH_GRID = 16
#: The strides of the stages patch maps choose from. At 64 px the stride-4 stage (16 x 16
#: cells, 24 channels for Lite0) located defects less often than the stride-8 stage
#: (8 x 8 cells), and stride 32 is the last stage (2 x 2 cells at 64 px).
PATCH_STRIDES = (8, 16)
#: The most numbers (patches x channels) the gallery keeps: 32 MB of float32. Lite0 at
#: 224 px keeps all its 256 x 196 patches of 112; ResNet50's layer3 (1024 channels) a
#: seeded random eighth of them.
MAX_PATCH_VALUES = 2**23
#: Queries x gallery patches compared at once (bounds the distance matrix's memory).
_PAIRS_PER_CHUNK = 2**24


def _stage_shapes(encoder: MeanShiftedEncoder, spec: BackboneSpec,
                  image_size: int) -> list[tuple[int, int]]:
    """(channels, grid side) of every stage's output for an ``image_size`` square input,
    from one blank forward pass."""
    stages = spec.stages(encoder.backbone)
    shapes = {}
    handles = [stage[-1].register_forward_hook(
        lambda module, args, output, i=i: shapes.__setitem__(
            i, (output.shape[1], output.shape[-1])))
        for i, stage in enumerate(stages)]
    device = next(encoder.parameters()).device
    try:
        with torch.inference_mode():
            encoder(torch.zeros((1, 3, image_size, image_size), device=device))
    finally:
        for handle in handles:
            handle.remove()
    return [shapes[i] for i in range(len(stages))]


def stage_sides(encoder: MeanShiftedEncoder, spec: BackboneSpec,
                image_size: int) -> list[int]:
    """The grid side of every stage's output for an ``image_size`` square input."""
    return [side for _, side in _stage_shapes(encoder, spec, image_size)]


def _chosen_stage(sides: list[int], image_size: int) -> int:
    finest, coarsest = (max(1, -(-image_size // stride)) for stride in PATCH_STRIDES)
    wanted = finest if finest <= PATCH_GRID else coarsest
    # The side nearest the wanted one (padding may round a side up by a cell).
    side = min(sides, key=lambda s: (abs(s - wanted), s))
    return max(i for i, s in enumerate(sides) if s == side)


def patch_stage(encoder: MeanShiftedEncoder, spec: BackboneSpec, image_size: int) -> int:
    """Index of the stage patch maps use: the last stage of stride 8 if its grid has at
    most :data:`PATCH_GRID` cells a side, else the last of stride 16 (strides
    :data:`PATCH_STRIDES`; several stages share a stride, the last has seen the most).

    Examples
    --------
    >>> from skmsc.nn import MeanShiftedNetwork
    >>> from skmsc.nn._patches import patch_stage
    >>> net = MeanShiftedNetwork.build("efficientnet_lite0", weights=None, image_size=64)
    >>> patch_stage(net.encoder, net.spec, 64), patch_stage(net.encoder, net.spec, 224)
    (3, 5)
    """
    return _chosen_stage(stage_sides(encoder, spec, image_size), image_size)


def patch_channels(encoder: MeanShiftedEncoder, spec: BackboneSpec, image_size: int) -> int:
    """The number of channels of a patch (of the :func:`patch_stage` feature map)."""
    shapes = _stage_shapes(encoder, spec, image_size)
    return shapes[_chosen_stage([side for _, side in shapes], image_size)][0]


def patch_features(encoder: MeanShiftedEncoder, inputs: torch.Tensor, *,
                   spec: BackboneSpec, stage: int,
                   precision: str = "float32") -> torch.Tensor:
    """The ``stage``'s feature map ``(b, C, g, g)`` (float32) of network inputs
    ``(b, 3, S, S)``; the forward pass stops there. The hook acts for the calling thread
    only."""
    captured = {}
    caller = threading.get_ident()

    class _Reached(Exception):
        pass

    def stop(module, args, output):
        if threading.get_ident() != caller:
            return None
        captured["A"] = output
        raise _Reached

    handle = spec.stages(encoder.backbone)[stage][-1].register_forward_hook(stop)
    try:
        with torch.inference_mode(), autocast(precision, inputs.device):
            encoder(channels_last(inputs))
    except _Reached:
        pass
    finally:
        handle.remove()
    return captured["A"].float().contiguous()


def reference_rows(n_samples: int) -> np.ndarray:
    """The training rows whose patches form the gallery: all of them, or
    :data:`MAP_REFERENCE_IMAGES` evenly spread.

    Examples
    --------
    >>> from skmsc.nn._patches import reference_rows
    >>> reference_rows(3).tolist(), len(reference_rows(10_000))
    ([0, 1, 2], 256)
    """
    if n_samples <= MAP_REFERENCE_IMAGES:
        return np.arange(n_samples)
    return np.unique(np.linspace(0, n_samples - 1, MAP_REFERENCE_IMAGES).round().astype(int))


def reference_patches(encoder: MeanShiftedEncoder, source, *, spec: BackboneSpec,
                      image_size: int, device: torch.device, batch_size: int,
                      precision: str = "float32") -> np.ndarray:
    """The gallery of normal patches: float32 ``(n_patches, C)``, every cell of the
    :func:`patch_stage` feature map of the :func:`reference_rows` of ``source`` (a batch
    source of training images), in eval mode."""
    encoder.eval()
    stage = patch_stage(encoder, spec, image_size)
    rows = reference_rows(len(source))
    step = extract_step(source, batch_size, image_size)
    pieces = []
    with source.subset(rows).reader(eval_transform(spec, image_size, device)) as reader:
        for start in range(0, len(rows), step):
            stop = min(start + step, len(rows))
            inputs = reader.read(slice(start, stop), ahead=slice(stop, min(stop + step,
                                                                           len(rows))))
            features = patch_features(encoder, inputs, spec=spec, stage=stage,
                                      precision=precision)
            pieces.append(features.permute(0, 2, 3, 1).flatten(0, 2).cpu().numpy())
    gallery = np.concatenate(pieces)
    keep = MAX_PATCH_VALUES // gallery.shape[1]
    if len(gallery) > keep:
        rows = np.sort(np.random.default_rng(0).choice(len(gallery), keep, replace=False))
        gallery = gallery[rows]
    return gallery


def nearest_patch_distances(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Euclidean distance ``(q,)`` from each query row to its nearest gallery row,
    compared in chunks so memory stays bounded.

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn._patches import nearest_patch_distances
    >>> gallery = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    >>> nearest_patch_distances(torch.tensor([[3.0, 0.0], [3.0, 4.0]]), gallery).tolist()
    [3.0, 0.0]
    """
    chunk = max(1, _PAIRS_PER_CHUNK // max(1, len(gallery)))
    squared_gallery = gallery.pow(2).sum(dim=1)
    nearest = []
    for start in range(0, len(queries), chunk):
        part = queries[start : start + chunk]
        # |q|^2 (the same for every row) is left out of the search: it ranks alike. The
        # expansion loses digits near 0, so the distance to the row found is recomputed.
        rows = (squared_gallery - 2.0 * part @ gallery.T).argmin(dim=1)
        nearest.append((part - gallery[rows]).norm(dim=1))
    return torch.cat(nearest)


def patch_maps(encoder: MeanShiftedEncoder, inputs: torch.Tensor, gallery: torch.Tensor, *,
               spec: BackboneSpec, stage: int, precision: str = "float32") -> torch.Tensor:
    """Patch maps ``(b, S, S)`` of network inputs ``(b, 3, S, S)``: each cell's distance
    to the nearest ``gallery`` patch (a float32 tensor on the inputs' device), upsampled
    bilinearly to the input."""
    features = patch_features(encoder, inputs, spec=spec, stage=stage, precision=precision)
    b, c, height, width = features.shape
    distances = nearest_patch_distances(features.permute(0, 2, 3, 1).reshape(-1, c), gallery)
    grid = distances.view(b, 1, height, width)
    return F.interpolate(grid, size=inputs.shape[-2:], mode="bilinear",
                         align_corners=False)[:, 0]
