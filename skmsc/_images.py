"""Checking image arrays and turning batches of them into network inputs.

Arrays stay as the user gave them (uint8 mostly); only one batch at a time is converted
to float on the device, so memory does not grow with the dataset.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import BackboneSpec

EXPECTED_INPUT = (
    "Expected images as an array of shape (n_samples, height, width, 3) (RGB) or "
    "(n_samples, height, width) (grayscale), dtype uint8 (0-255) or float in [0, 1]; "
    "or a 2-D array (n_samples, n_features) of feature vectors."
)


def check_image_array(X: np.ndarray) -> None:
    """Raise a ``ValueError`` naming the problem if ``X`` is not an image batch we accept."""
    if X.ndim not in (3, 4):
        raise ValueError(f"X has {X.ndim} dimensions, shape {X.shape}. {EXPECTED_INPUT}")
    if X.ndim == 4 and X.shape[-1] != 3:
        if X.shape[1] in (1, 3):
            hint = "It looks channels-first: pass np.moveaxis(X, 1, -1)."
        elif X.shape[-1] == 4:
            hint = "It has 4 channels (RGBA?): drop alpha with X[..., :3]."
        elif X.shape[-1] == 1:
            hint = "It has one channel: pass X[..., 0] for grayscale."
        else:
            hint = f"It has {X.shape[-1]} channels."
        raise ValueError(f"X has shape {X.shape}. {hint} {EXPECTED_INPUT}")
    if X.dtype.kind not in "uif":
        hint = " For binary masks pass X.astype(np.uint8) * 255." if X.dtype.kind == "b" else ""
        raise ValueError(f"X has dtype {X.dtype}.{hint} {EXPECTED_INPUT}")
    if X.size == 0:
        raise ValueError(f"X has shape {X.shape} with no pixels. {EXPECTED_INPUT}")
    if X.dtype == np.uint8:
        return
    low, high = X.min(), X.max()
    # min/max propagate NaN, and are infinite if any pixel is: one pass finds both.
    if X.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            "X contains NaN or infinity. Replace missing pixels (e.g. np.nan_to_num(X)) "
            "or drop those images."
        )
    if X.dtype.kind == "f" and (low < 0 or high > 1):
        raise ValueError(
            f"Float images must lie in [0, 1]; X spans [{low:g}, {high:g}]. "
            "Divide 0-255 images by 255, or pass them as uint8."
        )
    if X.dtype.kind in "ui" and (low < 0 or high > 255):
        raise ValueError(
            f"Integer images must lie in 0-255; X spans [{low}, {high}]. "
            "Rescale them to floats in [0, 1] (e.g. X / X.max())."
        )


def to_unit_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """A batch as float32 ``(b, 3, H, W)`` in [0, 1] on ``device``, contiguous (NCHW).

    The array travels to the device in its own dtype (uint8 is 4x smaller than float) and
    is reordered to NCHW there, before the conversion to float: resizing a contiguous
    NCHW batch is about twice as fast as a channels-last one on CPU
    (``docs/performance.md``), and the uint8 copy is the cheap one.
    The network's channels-last input is made after normalisation.
    """
    batch = np.ascontiguousarray(batch)
    if not batch.flags.writeable:
        # torch cannot wrap read-only memory (memmaps): copy this one batch only.
        batch = batch.copy()
    tensor = torch.from_numpy(batch).to(device, non_blocking=True)
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(-1).expand(*tensor.shape, 3)
    tensor = tensor.permute(0, 3, 1, 2).contiguous()
    if batch.dtype == np.uint8 or batch.dtype.kind in "ui":
        return tensor.float().div_(255.0)
    return tensor.float()


def normalize(images: torch.Tensor, spec: BackboneSpec) -> torch.Tensor:
    mean = torch.tensor(spec.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def resize_and_centre_crop(
    images: torch.Tensor, short_side: int, crop: int, interpolation: str
) -> torch.Tensor:
    """Resize so the shorter side is ``short_side`` (aspect kept), keep the central square.

    Values stay in [0, 1] (bicubic can overshoot, so the result is clamped).
    """
    height, width = images.shape[-2:]
    scale = short_side / min(height, width)
    new_size = (max(short_side, round(height * scale)), max(short_side, round(width * scale)))
    if new_size != (height, width):
        images = F.interpolate(
            images, size=new_size, mode=interpolation, antialias=True, align_corners=False
        ).clamp_(0.0, 1.0)
    top, left = (new_size[0] - crop) // 2, (new_size[1] - crop) // 2
    return images[..., top : top + crop, left : left + crop]


def eval_transform(images: torch.Tensor, spec: BackboneSpec, image_size: int) -> torch.Tensor:
    """Resize the shorter side to ``image_size / crop_fraction``, centre-crop, normalise."""
    short = round(image_size / spec.crop_fraction)
    return normalize(
        resize_and_centre_crop(images, short, image_size, spec.interpolation), spec
    )
