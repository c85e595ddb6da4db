"""Batched MoCo-v2 training augmentation for image tensors.

The Mean-Shifted Contrastive loss (Reiss & Hoshen, 2023) trains on two random views of every
image, made with the MoCo-v2 recipe::

    RandomResizedCrop(size, scale=(0.2, 1.0))
    RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)
    RandomGrayscale(p=0.2)
    RandomApply([GaussianBlur(kernel_size, sigma=(0.1, 2.0))], p=0.5)
    RandomHorizontalFlip()

:func:`random_views` applies the same recipe to a whole batch at once with vectorised torch
operations (random parameters per sample, no Python loop over images), so that it runs on the
GPU next to the model instead of in data-loader workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

__all__ = ["random_views"]

# ITU-R 601-2 luma weights, used by grayscale, contrast and saturation.
_LUMA = (0.299, 0.587, 0.114)
# Number of (area, aspect ratio) candidates torchvision's RandomResizedCrop tries per image.
_CROP_TRIES = 10


def random_views(
    images: torch.Tensor,
    output_size: int,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    blur_p: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    flip_p: float = 0.5,
) -> torch.Tensor:
    """Make one random MoCo-v2 view of every image in a batch.

    The operations follow torchvision's order and semantics: random resized crop, colour
    jitter, random grayscale, Gaussian blur and horizontal flip. Every sample gets its own
    random parameters.

    Parameters
    ----------
    images : torch.Tensor
        Float tensor of shape (N, 3, H, W) with values in [0, 1], on any device. It is not
        modified.
    output_size : int
        Side length of the square output views.
    generator : torch.Generator
        CPU generator from which all random parameters are drawn; the global random states of
        torch, numpy and :mod:`random` are left untouched. The same generator state gives the
        same views (on another device up to floating-point rounding). All parameters are drawn
        whatever the probabilities, so e.g. switching blur off leaves the crops unchanged.
    scale : tuple of float, default=(0.2, 1.0)
        Range of the crop area as a fraction of the image area.
    ratio : tuple of float, default=(3/4, 4/3)
        Range of the crop aspect ratio (width / height), sampled log-uniformly.
    jitter : tuple of float, default=(0.4, 0.4, 0.4, 0.1)
        Brightness, contrast, saturation and hue strengths. The first three factors are drawn
        uniformly from ``[max(0, 1 - x), 1 + x]``, the hue shift from ``[-x, x]`` (x <= 0.5).
        A strength of 0 disables that adjustment.
    jitter_p : float, default=0.8
        Probability that a sample is colour-jittered.
    grayscale_p : float, default=0.2
        Probability that a sample is converted to grayscale (replicated to 3 channels).
    blur_p : float, default=0.5
        Probability that a sample is blurred.
    blur_sigma : tuple of float, default=(0.1, 2.0)
        Range of the Gaussian standard deviation, in output pixels. The kernel size is the odd
        number nearest to 10% of ``output_size``, at least 3.
    flip_p : float, default=0.5
        Probability that a sample is mirrored horizontally.

    Returns
    -------
    torch.Tensor
        Tensor of shape (N, 3, output_size, output_size) with values in [0, 1], on the device
        and with the dtype of ``images``. It is not normalised.

    Notes
    -----
    torchvision's ColorJitter applies its four adjustments in a fresh random order for every
    image. Here one random order is drawn per call and shared by the batch, which keeps the
    work to four batched operations; factors are still drawn per sample, and over many batches
    every order is used equally often.

    The crop is resampled as :func:`torchvision.ops.roi_align` does (bilinear, with an adaptive
    number of samples per output pixel, which averages the input when a crop is shrunk, i.e.
    antialiases; crops that are not shrunk go through the faster ``grid_sample`` at the same
    sample points) rather than with torchvision's antialiased bilinear resize, so pixel values
    differ slightly from torchvision's. In particular the outermost half pixel of a view is
    interpolated towards the image content just outside the crop box, where torchvision, which
    crops before resizing, repeats the box's edge pixels.

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn.augment import random_views
    >>> images = torch.rand(4, 3, 32, 32)
    >>> views = random_views(images, 24, torch.Generator().manual_seed(0))
    >>> views.shape
    torch.Size([4, 3, 24, 24])
    >>> same = random_views(images, 24, torch.Generator().manual_seed(0))
    >>> bool(torch.equal(views, same))  # same generator state, same views
    True
    """
    _check_arguments(images, output_size, generator, scale, ratio, jitter, blur_sigma)
    n, _, height, width = images.shape
    device = images.device

    def coin(p: float) -> torch.Tensor:
        # Per-sample Bernoulli(p) mask, kept on the CPU (see _apply_to).
        return torch.rand(n, generator=generator) < p

    # Draw everything on the CPU in a fixed order, independent of the probabilities, so that
    # a seed determines the output and e.g. switching blur off does not change the crops.
    boxes = _crop_boxes(n, height, width, scale, ratio, generator)
    jitter_on = coin(jitter_p)
    factors = _jitter_factors(n, jitter, generator)
    order = torch.randperm(4, generator=generator).tolist()
    gray_on = coin(grayscale_p)
    blur_on = coin(blur_p)
    low, high = blur_sigma
    sigma = low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)
    flip_on = coin(flip_p)

    # (1) Random resized crop, all samples at once.
    views = _resample_boxes(images, boxes, output_size)

    # (2) Colour jitter, (3) random grayscale and (4) Gaussian blur of the selected samples.
    views = _apply_to(views, jitter_on, lambda v, f: _color_jitter(v, f, order, jitter), factors)
    views = _apply_to(views, gray_on, lambda v: _gray(v).expand_as(v))
    kernel_size = max(3, 2 * math.floor(0.1 * output_size / 2) + 1)
    views = _apply_to(views, blur_on, lambda v, s: _gaussian_blur(v, s, kernel_size), sigma)

    # (5) Horizontal flip.
    return torch.where(flip_on.view(n, 1, 1, 1).to(device), views.flip(-1), views)


def _check_arguments(images, output_size, generator, scale, ratio, jitter, blur_sigma) -> None:
    """Raise early, with a clear message, on arguments the vectorised code would mishandle."""
    if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3):
        raise ValueError(f"images must be a tensor of shape (N, 3, H, W), got {images!r:.80}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating point tensor, got {images.dtype}")
    if isinstance(output_size, bool) or not isinstance(output_size, int) or output_size < 2:
        raise ValueError(f"output_size must be an integer >= 2, got {output_size!r}")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise TypeError("generator must be a CPU torch.Generator")
    if not 0 < scale[0] <= scale[1] or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], "
                         f"got scale={scale}, ratio={ratio}")
    if min(jitter) < 0 or jitter[3] > 0.5:
        raise ValueError(f"jitter strengths must be >= 0 and hue <= 0.5, got {jitter}")
    if not 0 < blur_sigma[0] <= blur_sigma[1]:
        raise ValueError(f"need 0 < blur_sigma[0] <= blur_sigma[1], got {blur_sigma}")


def _crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """Draw RandomResizedCrop boxes with torchvision's semantics.

    Returns
    -------
    torch.Tensor
        Float64 CPU tensor of shape (N, 4): ``x1, y1, x2, y2`` in pixel-edge coordinates, i.e.
        the crop covers integer pixel columns ``x1 .. x2 - 1`` and rows ``y1 .. y2 - 1``.
    """
    # All tries are drawn at once; each sample keeps its first valid one, as torchvision's
    # loop does (its draws are interleaved differently, so the streams are not identical).
    u = torch.rand(n, _CROP_TRIES, 2, generator=generator, dtype=torch.float64)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    # torch.round rounds half to even like Python's round().
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.to(torch.int8).argmax(dim=1, keepdim=True)  # argmax returns the first max
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]

    # Fallback after ten failures: the whole image, with its aspect ratio clamped into ratio.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = round(height * ratio[1]), height
    else:
        fallback_w, fallback_h = width, height
    found = valid.any(dim=1)
    w = torch.where(found, w, float(fallback_w))
    h = torch.where(found, h, float(fallback_h))

    # Uniform integer offsets in [0, size - crop]; the fallback crop is centred.
    pos = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    top = torch.minimum(torch.floor(pos[:, 0] * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(pos[:, 1] * (width - w + 1)), width - w)
    top = torch.where(found, top, float((height - fallback_h) // 2))
    left = torch.where(found, left, float((width - fallback_w) // 2))
    return torch.stack([left, top, left + w, top + h], dim=1)


def _resample_boxes(images: torch.Tensor, boxes: torch.Tensor, output_size: int) -> torch.Tensor:
    """Resample box ``i`` of ``images[i]`` to an ``output_size`` square, as ``roi_align`` does.

    ``roi_align`` is called with aligned=True (box (0, 0, W, H) is exactly the whole image)
    and sampling_ratio=0: ceil(box side / output side) bilinear samples per output pixel and
    axis, which averages, i.e. antialiases, when a box is shrunk. A box no larger than the
    output takes one sample per pixel, which ``grid_sample`` computes at the same points
    several times faster on CPU, so those boxes (all of them when upscaling) go through it.
    """
    n, _, height, width = images.shape
    device, dtype = images.device, images.dtype
    one_sample = (boxes[:, 2] - boxes[:, 0] <= output_size) & (
        boxes[:, 3] - boxes[:, 1] <= output_size
    )
    shrunk = (~one_sample).nonzero()[:, 0]
    if len(shrunk) == n:
        return _roi_align_boxes(images, boxes, output_size)
    # Sample i of a box lies at x1 + (i + 0.5) * (x2 - x1) / size in pixel-edge coordinates;
    # grid_sample (align_corners=False) reads those as 2 * x / W - 1. Samples stay inside
    # the image, where roi_align's edge clamping equals padding_mode="border".
    steps = (torch.arange(output_size, dtype=torch.float64) + 0.5) / output_size
    x = boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1])
    y = boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])
    grid = torch.stack(
        [
            (2 * x / width - 1)[:, None, :].expand(n, output_size, output_size),
            (2 * y / height - 1)[:, :, None].expand(n, output_size, output_size),
        ],
        dim=-1,
    )
    views = F.grid_sample(
        images,
        grid.to(device=device, dtype=dtype),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    if len(shrunk):
        device_index = shrunk.to(device)
        averaged = _roi_align_boxes(images.index_select(0, device_index), boxes[shrunk],
                                    output_size)
        views = views.index_copy(0, device_index, averaged)
    return views.clamp_(0.0, 1.0)  # bilinear weights sum to 1 only up to rounding


def _roi_align_boxes(images: torch.Tensor, boxes: torch.Tensor, output_size: int):
    """``roi_align`` of box ``i`` (float64 CPU, edge coordinates) of ``images[i]``."""
    rois = torch.cat([torch.arange(len(boxes), dtype=torch.float64)[:, None], boxes], dim=1)
    return roi_align(
        images,
        rois.to(device=images.device, dtype=images.dtype),
        output_size=(output_size, output_size),
        spatial_scale=1.0,
        sampling_ratio=0,
        aligned=True,
    ).clamp_(0.0, 1.0)


def _apply_to(
    views: torch.Tensor, on: torch.Tensor, fn: Callable[..., torch.Tensor], *params: torch.Tensor
) -> torch.Tensor:
    """Replace the samples selected by ``on`` by ``fn(selected views, *selected params)``.

    ``on`` is a CPU boolean mask, so the indices are known without a device sync, and the
    operation costs nothing for the samples it leaves unchanged. ``params`` are per-sample CPU
    tensors, moved to the views' device and dtype. ``views`` is not modified.
    """
    index = on.nonzero()[:, 0]
    if len(index) == 0:
        return views
    to_views = {"device": views.device, "dtype": views.dtype}
    if len(index) == len(views):
        return fn(views, *(p.to(**to_views) for p in params))
    device_index = index.to(views.device)
    selected = fn(views.index_select(0, device_index), *(p[index].to(**to_views) for p in params))
    return views.index_copy(0, device_index, selected)


def _jitter_factors(
    n: int, jitter: tuple[float, float, float, float], generator: torch.Generator
) -> torch.Tensor:
    """Per-sample (brightness, contrast, saturation, hue) factors, shape (N, 4), float64 CPU."""
    b, c, s, h = jitter
    low = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -h], dtype=torch.float64)
    high = torch.tensor([1 + b, 1 + c, 1 + s, h], dtype=torch.float64)
    return low + (high - low) * torch.rand(n, 4, generator=generator, dtype=torch.float64)


def _color_jitter(
    images: torch.Tensor,
    factors: torch.Tensor,
    order: list[int],
    jitter: tuple[float, float, float, float],
) -> torch.Tensor:
    """Apply brightness, contrast, saturation and hue in ``order``, skipping zero strengths."""
    ops = (_adjust_brightness, _adjust_contrast, _adjust_saturation, _adjust_hue)
    for i in order:
        if jitter[i] > 0:
            images = ops[i](images, factors[:, i].view(-1, 1, 1, 1))
    return images


def _gray(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma of (N, 3, H, W) RGB images, shape (N, 1, H, W)."""
    r, g, b = images.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor * images + (1 - factor) * other``, clamped to [0, 1] like torchvision."""
    return torch.lerp(other, images, factor).clamp_(0.0, 1.0)


def _adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale intensities (a blend with black); ``factor`` has shape (N, 1, 1, 1)."""
    return (images * factor).clamp_(0.0, 1.0)


def _adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the mean grey level of each image."""
    return _blend(images, _gray(images).mean(dim=(1, 2, 3), keepdim=True), factor)


def _adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale version of each image."""
    return _blend(images, _gray(images), factor)


def _adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` (in turns, shape (N, 1, 1, 1)), as an HSV round trip would.

    HSV to RGB gives channel c as ``v - (v - m) * clamp(min(k, 4 - k), 0, 1)`` with ``v`` and
    ``m`` the largest and smallest of r, g, b and ``k = (n_c + 6 * hue) mod 6`` (n = 5, 3, 1
    for red, green, blue). A hue rotation keeps ``v`` and ``m``, so only the hue is computed:
    half the work of converting all three channels to HSV and back.
    """
    r, g, b = images.unbind(1)
    largest, smallest = images.amax(dim=1), images.amin(dim=1)
    spread = largest - smallest
    # Grey pixels (spread 0) keep their value whatever the hue; the safe denominator only
    # avoids NaNs in the branches that torch.where discards.
    safe_spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    hue6 = torch.where(  # 6 * hue, in [-1, 5); the mod 6 below wraps negative hues
        largest == r,
        (g - b) / safe_spread,
        torch.where(largest == g, (b - r) / safe_spread + 2.0, (r - g) / safe_spread + 4.0),
    )
    n = torch.tensor([5.0, 3.0, 1.0], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    k = torch.remainder(n + (hue6 + 6.0 * shift[:, 0]).unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return (largest.unsqueeze(1) - spread.unsqueeze(1) * ramp).clamp_(0.0, 1.0)


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur each image with its own Gaussian, ``sigma`` of shape (N,), reflect padding."""
    kernel = _gaussian_kernels(sigma, kernel_size, images)
    # The far tails of narrow Gaussians hold subnormal floats, which make CPU convolutions
    # several times slower. Weights below eps**2 change the sum far less than its rounding
    # (eps), and zeroing them keeps products with small pixels out of the subnormal range.
    kernel = torch.where(kernel >= torch.finfo(kernel.dtype).eps ** 2, kernel, 0.0)
    return _separable_convolution(images, kernel)


def _gaussian_kernels(sigma: torch.Tensor, kernel_size: int, like: torch.Tensor) -> torch.Tensor:
    """1-D Gaussians summing to 1, shape (N, kernel_size), in ``like``'s dtype and device."""
    x = torch.arange(kernel_size, dtype=like.dtype, device=like.device)
    kernel = torch.exp(-0.5 * ((x - (kernel_size - 1) / 2) / sigma[:, None]) ** 2)
    return kernel / kernel.sum(dim=1, keepdim=True)


def _separable_convolution(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve image i's rows, then its columns, with ``kernel[i]``; reflect padding.

    Folding the batch into the channels, (1, N * 3, H, W), turns the per-sample kernels into
    one grouped (depthwise) convolution per pass.
    """
    n, c, height, width = images.shape
    kernel_size = kernel.shape[1]
    kernel = kernel.repeat_interleave(c, dim=0)
    pad = kernel_size // 2
    flat = F.pad(images.reshape(1, n * c, height, width), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, kernel_size), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, kernel_size, 1), groups=n * c)
    return flat.view(n, c, height, width).clamp_(0.0, 1.0)  # kernel sums to 1 up to rounding
