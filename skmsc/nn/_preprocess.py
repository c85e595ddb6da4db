"""Turning batches of images into network inputs: the evaluation and training transforms.

Arrays stay as the user gave them (uint8 mostly); only one batch at a time is converted
to float on the device, so memory does not grow with the dataset. The two
:class:`~skmsc.data._batches.BatchTransform` factories at the end are what the training
loop hands to a batch source (array or files).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data._batches import BatchTransform
from .backbones import BackboneSpec

__all__ = [
    "UINT8_RESIZE_DEVICES", "centre_crop", "crop_offsets", "eval_inputs", "eval_transform",
    "network_input", "resize_and_centre_crop", "resized_size", "to_unit_tensor",
    "training_transform",
]

def to_unit_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """A batch as float32 ``(b, 3, H, W)`` in [0, 1] on ``device``, contiguous (NCHW).

    The array travels to the device in its own dtype (uint8 is 4x smaller than float) and
    is reordered to NCHW there, before the conversion to float: resampling a contiguous
    NCHW float batch is faster than a channels-last one on CPU (``docs/performance.md``),
    and the uint8 copy is the cheap one. Fine-tuning's augmentation starts from this.
    """
    tensor = _as_device_tensor(batch, device)
    if tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    tensor = tensor.contiguous()
    if tensor.dtype.is_floating_point:
        return tensor.float()
    return tensor.float().div_(255.0)


def _as_device_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """``batch`` on ``device`` in its own dtype, as a ``(b, c, H, W)`` view (c = 1 or 3).

    Colour images are a channels-last view of the user's layout; nothing is reordered yet.
    """
    batch = np.ascontiguousarray(batch)
    if not batch.flags.writeable:
        # torch cannot wrap read-only memory (memmaps): copy this one batch only.
        batch = batch.copy()
    tensor = torch.from_numpy(batch).to(device, non_blocking=True)
    if tensor.ndim == 3:
        return tensor.unsqueeze(1)
    return tensor.permute(0, 3, 1, 2)


def eval_inputs(
    batch: np.ndarray, spec: BackboneSpec, image_size: int, device: torch.device,
    *, uint8_kernels: bool | None = None,
) -> torch.Tensor:
    """Network inputs for an image batch: float32 ``(b, 3, image_size, image_size)``.

    The reference's evaluation transform: the shorter side is resized to
    ``image_size / crop_fraction`` with the backbone's (antialiased) interpolation, the
    central square is kept and the channels are normalised with the backbone's mean and
    std. The result is channels-last on ``device``.

    Images are resized as PIL resizes the reference's uint8 images: a horizontal then a
    vertical pass, each clipped to the pixel range (bicubic overshoots) and, for integer
    images, rounded to integer levels. On CPU torch's uint8 kernels do exactly this, several
    times faster than float ones (``docs/performance.md``); elsewhere, and for float images,
    the passes run in float. So uint8 and float copies of an image, and CPU and GPU, agree
    to within rounding. ``uint8_kernels=False`` forces the float passes (``None``: uint8
    kernels on the devices in ``UINT8_RESIZE_DEVICES``).
    """
    pixels = _as_device_tensor(batch, device)
    integer = not pixels.dtype.is_floating_point
    short = round(image_size / spec.crop_fraction)
    size = resized_size(*pixels.shape[-2:], short)
    if size != tuple(pixels.shape[-2:]):
        if uint8_kernels is None:
            uint8_kernels = pixels.device.type in UINT8_RESIZE_DEVICES
        if integer and uint8_kernels:
            # skmsc._checks.check_image_array guarantees 0-255, so uint8 holds any integer image.
            pixels = _resize(pixels.to(torch.uint8), size, spec.interpolation)
        else:
            pixels = _resize_in_float(pixels, size, spec.interpolation, integer)
    return network_input(centre_crop(pixels, image_size), spec, white=255.0 if integer else 1.0)


def _resize_in_float(pixels: torch.Tensor, size, mode: str, integer: bool) -> torch.Tensor:
    """The two passes of a uint8 resize in float: clipped, and rounded if ``integer``."""
    # A contiguous NCHW float batch resizes faster than a channels-last one on CPU.
    pixels = pixels.contiguous().float()
    white = 255.0 if integer else 1.0
    for pass_size in ((pixels.shape[-2], size[1]), size):  # horizontal, then vertical
        pixels = _resize(pixels, pass_size, mode).clamp_(0.0, white)
        if integer:
            pixels = pixels.round_()
    return pixels


#: Device types on which torch resizes uint8 images with its own (antialiased) kernels.
UINT8_RESIZE_DEVICES = ("cpu",)


def _resize(images: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode=mode, antialias=True, align_corners=False)


def network_input(pixels: torch.Tensor, spec: BackboneSpec, white: float = 1.0) -> torch.Tensor:
    """``(pixels / white - mean) / std`` as float32 channels-last, grey replicated to RGB.

    One copy (which also converts the dtype and the layout) and two in-place operations,
    with Python scalars when every channel shares mean and std (several times faster than
    broadcasting over the innermost, 3-long channel axis of a channels-last tensor).
    """
    b, _, height, width = pixels.shape
    out = torch.empty((b, 3, height, width), dtype=torch.float32, device=pixels.device,
                      memory_format=torch.channels_last)
    out.copy_(pixels.expand(b, 3, height, width))
    if len(set(spec.mean)) == 1 and len(set(spec.std)) == 1:
        return out.mul_(1.0 / (white * spec.std[0])).sub_(spec.mean[0] / spec.std[0])
    mean = torch.tensor(spec.mean, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=pixels.device).view(1, 3, 1, 1)
    return out.mul_(1.0 / (white * std)).sub_(mean / std)


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """The size torchvision's ``Resize(short_side)`` gives: the longer side is truncated."""
    if height <= width:
        return short_side, int(short_side * width / height)
    return int(short_side * height / width), short_side


def centre_crop(images: torch.Tensor, crop: int) -> torch.Tensor:
    """The central ``crop`` square (a view), offsets rounded as torchvision's CenterCrop."""
    top, left = crop_offsets(*images.shape[-2:], crop)
    return images[..., top : top + crop, left : left + crop]


def crop_offsets(height: int, width: int, crop: int) -> tuple[int, int]:
    """(top, left) of the central ``crop`` square of a ``height`` x ``width`` image."""
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


def resize_and_centre_crop(
    images: torch.Tensor, short_side: int, crop: int, interpolation: str
) -> torch.Tensor:
    """Resize float images in [0, 1] so the shorter side is ``short_side`` (two clipped
    passes, as :func:`eval_inputs`); keep the central square."""
    size = resized_size(*images.shape[-2:], short_side)
    if size != tuple(images.shape[-2:]):
        images = _resize_in_float(images, size, interpolation, integer=False)
    return centre_crop(images, crop)


def _to_device(pieces: list, device: torch.device) -> torch.Tensor:
    return torch.cat(pieces).to(device, non_blocking=True)


def eval_transform(spec: BackboneSpec, image_size: int, device: torch.device) -> BatchTransform:
    """The evaluation transform (:func:`eval_inputs`) as a batch source's transform.

    Files go through it one by one on the CPU (in the decoding threads), whatever their
    size, so a file's features depend on its pixels alone.
    """
    cpu = torch.device("cpu")
    return BatchTransform(
        stack=lambda pixels: eval_inputs(pixels, spec, image_size, device),
        one=lambda pixels: eval_inputs(pixels, spec, image_size, cpu),
        combine=lambda pieces: _to_device(pieces, device),
    )


def training_transform(
    spec: BackboneSpec, image_size: int, device: torch.device
) -> BatchTransform:
    """Float ``(b, 3, H, W)`` in [0, 1] of one size, where the augmentation starts.

    Arrays and files of one size keep their own size; files of mixed sizes are each
    resized so the shorter side is ``image_size / crop_fraction`` and the central square of
    that side is kept (the region the evaluation transform looks at).
    """
    cpu = torch.device("cpu")
    side = round(image_size / spec.crop_fraction)

    def one(pixels: np.ndarray) -> torch.Tensor:
        square = resize_and_centre_crop(to_unit_tensor(pixels, cpu), side, side,
                                        spec.interpolation)
        return square.contiguous()

    return BatchTransform(
        stack=lambda pixels: to_unit_tensor(pixels, device),
        one=one,
        combine=lambda pieces: _to_device(pieces, device),
        stack_same_size_files=True,
    )
