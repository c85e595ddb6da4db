"""Anomaly maps: where in an image its kNN anomaly score comes from.

The method scores an image by ``S(x) = sum_j |z(x) - g_j|^2``, the summed squared
distance from its unit feature ``z(x)`` to its ``k`` nearest gallery (training) features
``g_j``. A map does not replace that score, it explains it, in one of two ways:

- ``"gradient"`` (Grad-CAM): the gradient of ``S`` with respect to the last convolutional
  feature map ``A`` (the output of the backbone's last stage, stride 32), averaged over
  the positions, weighs each channel; the map is ``ReLU(sum_c weight_c * A_c)``, upsampled
  from the feature grid (``image_size / 32`` cells a side) to the network input. One
  forward and one short backward pass per image.
- ``"layercam"``: LayerCAM (Jiang et al., IEEE TIP 2021) of ``S`` on every stage of the
  backbone from stride 4 on (for EfficientNet-Lite0 blocks 1-6 and the head; for a ResNet
  layer1-4), mixed: at each stage, each position's channels are weighed by their own
  positive gradients, ``ReLU(sum_c ReLU(dS/dA_c) * A_c)``; each stage's map is
  upsampled, divided by its largest value, and the stages are averaged (0 to 1). The
  stride-4 and stride-8 stages keep ``image_size / 4`` and ``image_size / 8`` cells a
  side (16 and 8 at 64 px) where Grad-CAM on the last stage has 2 x 2. One forward pass
  and one backward pass from the stride-4 stage on per image.
- ``"occlusion"``: a square patch (a quarter of ``image_size`` a side, moved by an eighth)
  is painted in the image's mean colour, and the drop of ``S`` is added to the pixels the
  patch covered; the map is the mean drop per pixel minus its smallest value. Painting a
  patch is itself unusual, so on textured images nearly every occlusion *raises* the
  score; subtracting the least drop (rather than clipping at 0, which left such maps
  flat) keeps their ranking of places. The mean colour located defects better than a
  blurred copy of the patch on both data sets measured (``docs/guide/anomaly_maps.rst``).
  49 forward passes per image, in batches of ``batch_size`` occluded copies.

The neighbours are found with the detector's own index, so the explained score is the
method's score (:class:`skmsc.neighbors.KNNScorer`). Both maps are non-negative, larger where
the image departs from its nearest normal images, in units of their own (the occlusion
map in units of ``S``).

Maps are computed on the network input (the ``image_size`` square of the evaluation
transform) and then put back at the input's resolution: the crop's place in the resized
image is filled, everything outside it is 0, and the whole is resized to the image's size.
Outside the central crop the network sees nothing, so the score does not depend on those
pixels and 0 is their exact attribution (a defect there cannot be found).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from ..data._batches import BatchTransform
from ..neighbors import KNNScorer
from ._patches import patch_maps, patch_stage, stage_sides
from ._preprocess import crop_offsets, eval_transform, resized_size
from ._runtime import autocast
from ._training import channels_last, extract_step
from .backbones import BackboneSpec
from .model import MeanShiftedEncoder

__all__ = [
    "LAYERCAM_MIN_STRIDE", "MAP_METHODS", "OCCLUSION_FILLS", "KNNScore", "anomaly_maps",
    "gradient_maps", "layercam_maps", "layercam_stages", "occlusion_maps",
    "occlusion_patches", "to_input_resolution",
]

#: The ways of computing a map (see the module docstring and :mod:`skmsc.nn._patches`).
MAP_METHODS = ("patch", "occlusion", "gradient", "layercam")
#: The smallest stride of the stages ``"layercam"`` mixes (their grids: ``image_size /
#: stride`` cells a side). Including the stride-4 stage located ELPV defects at 64 px
#: better than starting at stride 8 (docs/guide/anomaly_maps.rst).
LAYERCAM_MIN_STRIDE = 4
#: What an occluded patch is filled with: the image's mean colour, or a blurred copy of it.
OCCLUSION_FILLS = ("mean", "blur")
#: Occlusion patch side as a fraction of ``image_size``, and patch positions per side
#: (evenly spread from border to border: a stride of about an eighth of ``image_size``,
#: each pixel covered by up to 4 patches).
OCCLUSION_PATCH_FRACTION = 0.25
OCCLUSION_POSITIONS = 7


class KNNScore:
    """The method's anomaly score ``S``, differentiable in the features.

    ``index.kneighbors`` (the detector's own search, exact or approximate) chooses the
    ``scorer.n_neighbors`` nearest rows of the vectors it searches (``index.gallery``);
    ``scorer`` (:class:`skmsc.neighbors.KNNScorer`) then scores ``z`` against them in
    torch, so gradients flow to ``z``. ``S`` is minus that normality score: it equals minus
    :meth:`KNNScorer.scores` up to float rounding.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skmsc.neighbors import ExactIndex, KNNScorer
    >>> from skmsc.nn._explain import KNNScore
    >>> gallery = np.eye(3, dtype=np.float32)
    >>> score = KNNScore(ExactIndex(gallery), KNNScorer(2))
    >>> score(torch.tensor([[1.0, 0.0, 0.0]])).tolist()
    [2.0]
    """

    def __init__(self, index, scorer: KNNScorer):
        # The rows kneighbors returns are rows of what the index searches: take them there.
        self.gallery = np.asarray(index.gallery, dtype=np.float32)
        self.index = index
        self.scorer = scorer

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float()
        _, rows = self.index.kneighbors(z.detach().cpu().numpy(), self.scorer.n_neighbors)
        neighbours = torch.from_numpy(self.gallery[rows]).to(z.device)  # (b, k, d)
        return -self.scorer.torch_scores(z, neighbours)


def _last_feature_map_module(encoder: MeanShiftedEncoder, spec: BackboneSpec):
    """The module whose output is the last convolutional feature map (the last stage's)."""
    return spec.stages(encoder.backbone)[-1][-1]


def gradient_maps(encoder: MeanShiftedEncoder, inputs: torch.Tensor, score: KNNScore, *,
                  spec: BackboneSpec, precision: str = "float32") -> torch.Tensor:
    """Grad-CAM maps ``(b, S, S)`` of network inputs ``(b, 3, S, S)`` for the kNN score.

    A forward hook swaps the last stage's output for a detached copy that requires grad,
    so the backward pass runs through the pooling and the score only, whatever the
    encoder's ``requires_grad`` flags; the hook acts for the calling thread only.
    """
    captured = {}
    caller = threading.get_ident()

    def swap_for_leaf(module, args, output):
        if threading.get_ident() != caller:
            return None
        captured["A"] = output.detach().requires_grad_(True)
        return captured["A"]

    handle = _last_feature_map_module(encoder, spec).register_forward_hook(swap_for_leaf)
    try:
        with torch.enable_grad(), autocast(precision, inputs.device):
            total = score(encoder(channels_last(inputs))).sum()
        (gradient,) = torch.autograd.grad(total, captured["A"])
    finally:
        handle.remove()
    features = captured["A"].detach().float()
    if features.shape[-2:] == (1, 1):
        # The score depends on the pooled feature only through its direction, so the
        # gradient is orthogonal to it and a single cell's Grad-CAM value is exactly 0.
        warnings.warn(
            f"At image_size={inputs.shape[-1]} the last feature map has a single cell, so "
            "the gradient map is flat (0 up to rounding). Use method='layercam' (the "
            "default), which mixes finer stages, or method='occlusion'.",
            UserWarning, stacklevel=5,  # the caller of anomaly_maps
        )
    weights = gradient.float().mean(dim=(2, 3), keepdim=True)
    cam = (weights * features).sum(dim=1, keepdim=True).clamp_min_(0.0)
    size = inputs.shape[-2:]
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]


def layercam_stages(encoder: MeanShiftedEncoder, spec: BackboneSpec,
                    image_size: int) -> list[int]:
    """Indices of the backbone's stages that ``"layercam"`` mixes: those whose output is at
    least :data:`LAYERCAM_MIN_STRIDE` times smaller than the input (found by running one
    blank ``image_size`` square through the network); the last stage at least.

    Examples
    --------
    >>> from skmsc.nn import MeanShiftedNetwork
    >>> from skmsc.nn._explain import layercam_stages
    >>> net = MeanShiftedNetwork.build("efficientnet_lite0", weights=None, image_size=64)
    >>> layercam_stages(net.encoder, net.spec, 64)  # blocks 1-6 and the head
    [2, 3, 4, 5, 6, 7, 8]
    """
    sides = stage_sides(encoder, spec, image_size)
    chosen = [i for i, side in enumerate(sides) if side * LAYERCAM_MIN_STRIDE <= image_size]
    return chosen or [len(sides) - 1]


def layercam_maps(encoder: MeanShiftedEncoder, inputs: torch.Tensor, score: KNNScore, *,
                  spec: BackboneSpec, precision: str = "float32",
                  stage_indices: list[int] | None = None) -> torch.Tensor:
    """Multi-stage LayerCAM maps ``(b, S, S)``, in [0, 1], of network inputs ``(b, 3, S, S)``.

    A forward hook swaps the first chosen stage's output for a detached copy that
    requires grad (so the backward pass starts there, whatever the encoder's
    ``requires_grad`` flags) and keeps the later stages' outputs; one backward pass gives
    the score's gradient at each of them. Hooks act for the calling thread only.
    """
    if stage_indices is None:
        stage_indices = layercam_stages(encoder, spec, inputs.shape[-1])
    stages = spec.stages(encoder.backbone)
    first = min(stage_indices)
    captured = {}
    caller = threading.get_ident()

    def keep(module, args, output, i):
        if threading.get_ident() != caller:
            return None
        if i == first:
            output = output.detach().requires_grad_(True)
        captured[i] = output
        return output

    handles = [stages[i][-1].register_forward_hook(
        lambda module, args, output, i=i: keep(module, args, output, i))
        for i in stage_indices]
    try:
        with torch.enable_grad(), autocast(precision, inputs.device):
            total = score(encoder(channels_last(inputs))).sum()
        gradients = torch.autograd.grad(total, [captured[i] for i in stage_indices])
    finally:
        for handle in handles:
            handle.remove()
    size = inputs.shape[-2:]
    mixed = torch.zeros((len(inputs), *size), dtype=torch.float32, device=inputs.device)
    for i, gradient in zip(stage_indices, gradients, strict=True):
        features = captured[i].detach().float()
        cam = (gradient.float().clamp_min(0.0) * features).sum(dim=1, keepdim=True)
        cam = F.interpolate(cam.clamp_min_(0.0), size=size, mode="bilinear",
                            align_corners=False)[:, 0]
        largest = cam.flatten(1).amax(dim=1).view(-1, 1, 1)
        mixed += torch.where(largest > 0, cam / largest.clamp_min(1e-30), 0.0)
    return mixed / len(stage_indices)


def occlusion_patches(image_size: int, device=None) -> torch.Tensor:
    """Bool masks ``(P, S, S)`` of the occluding patches, covering every pixel.

    Squares of side ``OCCLUSION_PATCH_FRACTION * image_size`` at ``OCCLUSION_POSITIONS``
    evenly spread positions per side, the first and last touching the border.

    Examples
    --------
    >>> from skmsc.nn._explain import occlusion_patches
    >>> patches = occlusion_patches(224)
    >>> patches.shape, int(patches[0].sum()), bool(patches.any(dim=0).all())
    (torch.Size([49, 224, 224]), 3136, True)
    """
    patch = max(1, round(OCCLUSION_PATCH_FRACTION * image_size))
    starts = np.linspace(0, image_size - patch, OCCLUSION_POSITIONS).round().astype(int)
    masks = torch.zeros((len(starts) ** 2, image_size, image_size), dtype=torch.bool,
                        device=device)
    for k, (top, left) in enumerate((t, s) for t in starts for s in starts):
        masks[k, top : top + patch, left : left + patch] = True
    return masks


def _fill_images(inputs: torch.Tensor, fill: str, patch: int) -> torch.Tensor:
    """What occluded pixels become: each image's mean colour, or a blurred copy of it
    (sigma a quarter of the patch side, so detail at the patch's scale is gone)."""
    if fill == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs)
    sigma = patch / 4.0
    # An odd kernel of +-3 sigma, short enough for the reflect padding (< image side).
    kernel = min(2 * int(np.ceil(3 * sigma)) + 1, 2 * ((inputs.shape[-1] - 1) // 2) + 1)
    return gaussian_blur(inputs.contiguous(), [kernel, kernel], [sigma, sigma])


def occlusion_maps(encoder: MeanShiftedEncoder, inputs: torch.Tensor, score: KNNScore, *,
                   batch_size: int, precision: str = "float32",
                   fill: str = "mean") -> torch.Tensor:
    """Occlusion maps ``(b, S, S)`` of network inputs ``(b, 3, S, S)`` for the kNN score.

    Every (image, patch) pair is one occluded copy; copies go through the network
    ``batch_size`` at a time, so memory does not grow with the number of patches or
    images. A pixel's value is the mean score drop over the patches covering it, minus
    the smallest such value of its image (each map's minimum is 0).
    """
    if fill not in OCCLUSION_FILLS:
        raise ValueError(f"fill={fill!r} is not one of {OCCLUSION_FILLS}.")
    n, _, side, _ = inputs.shape
    patches = occlusion_patches(side, inputs.device)
    patch = int(patches[0].any(dim=0).sum())  # the first patch's side
    fills = _fill_images(inputs, fill, patch)
    with torch.inference_mode():
        with autocast(precision, inputs.device):
            base = score(encoder(channels_last(inputs)))
        drops = torch.zeros((n, side, side), dtype=torch.float32, device=inputs.device)
        pairs = torch.cartesian_prod(torch.arange(n), torch.arange(len(patches)))
        for start in range(0, len(pairs), batch_size):
            image, where = pairs[start : start + batch_size].to(inputs.device).unbind(dim=1)
            mask = patches[where].unsqueeze(1)
            occluded = torch.where(mask, fills[image], inputs[image])
            with autocast(precision, inputs.device):
                drop = base[image] - score(encoder(channels_last(occluded)))
            spread = drop.view(-1, 1, 1) * mask[:, 0]
            # A sum per image rather than index_add_, whose CUDA kernel adds in any order.
            for i in image.unique().tolist():
                drops[i] += spread[image == i].sum(dim=0)
        coverage = patches.sum(dim=0, dtype=torch.float32)
    mean_drops = drops / coverage
    return mean_drops - mean_drops.amin(dim=(1, 2), keepdim=True)


def to_input_resolution(network_map: torch.Tensor, height: int, width: int,
                        spec: BackboneSpec, image_size: int) -> np.ndarray:
    """A map over the network input, as float32 ``(height, width)`` over the image.

    Undoes the evaluation transform (``skmsc.nn._preprocess.eval_inputs``): the map fills
    the crop's place in the resized image, 0 elsewhere (the network never saw those
    pixels), and is resized to the image's size (bilinear; antialiased when shrinking).

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn.backbones import get_spec
    >>> from skmsc.nn._explain import to_input_resolution
    >>> spec = get_spec("efficientnet_lite0")  # crops the central 87.5 %
    >>> image_map = to_input_resolution(torch.ones(32, 32), 40, 40, spec, 32)
    >>> image_map.shape, float(image_map[20, 20]), float(image_map[0, 0])
    ((40, 40), 1.0, 0.0)
    """
    short = round(image_size / spec.crop_fraction)
    resized = resized_size(height, width, short)
    top, left = crop_offsets(*resized, image_size)
    canvas = network_map.new_zeros(resized)
    canvas[top : top + image_size, left : left + image_size] = network_map
    if resized != (height, width):
        canvas = F.interpolate(canvas[None, None], size=(height, width), mode="bilinear",
                               align_corners=False, antialias=True)[0, 0]
    return canvas.clamp_min_(0.0).cpu().numpy().astype(np.float32, copy=False)


def _sized(transform: BatchTransform) -> BatchTransform:
    """``transform`` that also returns each image's (height, width) as decoded."""
    return BatchTransform(
        stack=lambda pixels: (transform.stack(pixels), [pixels.shape[1:3]] * len(pixels)),
        one=lambda pixels: (transform.one(pixels), pixels.shape[1:3]),
        combine=lambda pieces: (transform.combine([p for p, _ in pieces]),
                                [size for _, size in pieces]),
        stack_same_size_files=transform.stack_same_size_files,
    )


def anomaly_maps(encoder: MeanShiftedEncoder, source, score: KNNScore | None, *,
                 spec: BackboneSpec, image_size: int, device: torch.device, method: str,
                 batch_size: int, precision: str = "float32", fill: str = "mean",
                 patches: np.ndarray | None = None) -> list[np.ndarray]:
    """One float32 map ``(H, W)`` per image of a batch source, at the image's resolution.

    ``method`` is one of :data:`MAP_METHODS` (see the module docstring); ``"patch"``
    needs ``patches``, the gallery of normal patches
    (:func:`skmsc.nn._patches.reference_patches`), the others ``score`` (each ignores
    the other). Images are
    read ``batch_size`` at a time (fewer for huge images, as in feature extraction);
    occlusion also runs ``batch_size`` occluded copies at a time.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"method={method!r} is not one of {MAP_METHODS}.")
    if (patches if method == "patch" else score) is None:
        raise TypeError("method='patch' needs patches=, the other methods a score.")
    encoder.eval()
    n = len(source)
    step = extract_step(source, batch_size, image_size)
    stage_indices = (layercam_stages(encoder, spec, image_size) if method == "layercam"
                     else None)
    if method == "patch":
        stage = patch_stage(encoder, spec, image_size)
        gallery = torch.from_numpy(np.asarray(patches, dtype=np.float32)).to(device)
    maps = []
    with source.reader(_sized(eval_transform(spec, image_size, device))) as reader:
        for start in range(0, n, step):
            stop = min(start + step, n)
            inputs, sizes = reader.read(slice(start, stop),
                                        ahead=slice(stop, min(stop + step, n)))
            if method == "patch":
                network_maps = patch_maps(encoder, inputs, gallery, spec=spec, stage=stage,
                                          precision=precision)
            elif method == "gradient":
                network_maps = gradient_maps(encoder, inputs, score, spec=spec,
                                             precision=precision)
            elif method == "layercam":
                network_maps = layercam_maps(encoder, inputs, score, spec=spec,
                                             precision=precision,
                                             stage_indices=stage_indices)
            else:
                network_maps = occlusion_maps(encoder, inputs, score, batch_size=batch_size,
                                              precision=precision, fill=fill)
            maps.extend(to_input_resolution(m, int(h), int(w), spec, image_size)
                        for m, (h, w) in zip(network_maps, sizes, strict=True))
    return maps
