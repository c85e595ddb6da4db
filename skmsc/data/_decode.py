"""Pixels from an opened image: bit depths, float images, and a memory budget for decoding.

What the network takes is RGB in [0, 1] (``uint8`` 0-255 stands for it). Pillow hands
images over in modes that mean different ranges, so each is read explicitly:

- 8 bits per sample (``1``, ``L``, ``P``, ``RGB``, ``RGBA``, ``CMYK``, ...): RGB ``uint8``
  (grayscale replicated, palettes expanded, alpha dropped). Pillow itself reduces 16-bit
  colour PNGs to 8 bits (the high byte) before we see them.
- 16-bit grayscale (``I;16*``, and ``I`` from 16-bit PGM): float32 in [0, 1], the value
  divided by 65535, the full range the PNG and TIFF standards give the container. Data of
  fewer bits stored unscaled (a 12-bit camera writing 0-4095) then looks dark; pass
  ``bit_depth=12`` to divide by 4095 instead (larger values are refused).
- 32-bit integer (``I``, e.g. TIFF): read as above when its values lie in 0-65535 (or
  within ``bit_depth``), refused otherwise (its range is not known).
- 32-bit float (``F``, e.g. TIFF): taken as it is when in [0, 1]; refused otherwise
  (NaN, or another range, which would need a scale we cannot guess).

A multi-frame file (animated GIF, PNG or WebP; multi-page TIFF) gives its first frame.

Memory. Decoding holds Pillow's copy of the image and the array made from it (the array is
filled in stripes, without further full-size copies): about 7 bytes a pixel for 8-bit
RGB, 14 for 16-bit or float. All decoding threads of the process together reserve at
most ``DECODE_MEMORY_BUDGET_BYTES`` of such estimates at once; a larger image waits and
then decodes alone. Pillow refuses images above twice ``PIL.Image.MAX_IMAGE_PIXELS``
(179 megapixels by default) as decompression bombs.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "DECODE_MEMORY_BUDGET_BYTES", "check_bit_depth", "decoding_reservation", "image_pixels",
]

#: Estimated bytes that images being decoded at once may take, all threads together
#: (an image above it decodes alone). Read at each decode, so it can be changed.
DECODE_MEMORY_BUDGET_BYTES = 512 * 2**20
# Rows of pixels copied out of Pillow at a time: a few MB, never a full-size copy.
_STRIPE_BYTES = 4 * 2**20
_EIGHT_BIT = {"1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LA", "La",
              "PA", "LAB", "HSV"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
# Bytes per pixel of Pillow's own storage of a mode (what image.load() allocates).
_CORE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


class _MemoryBudget:
    """Reservations of estimated decoding memory, shared by every decoding thread."""

    def __init__(self):
        self._used = 0
        self._free = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, amount: int):
        total = DECODE_MEMORY_BUDGET_BYTES
        amount = max(0, min(int(amount), total))  # larger: wait for all, then decode alone
        with self._free:
            self._free.wait_for(lambda: self._used + amount <= total)
            self._used += amount
        try:
            yield
        finally:
            with self._free:
                self._used -= amount
                self._free.notify_all()


_BUDGET = _MemoryBudget()


def decoding_reservation(image: Image.Image):
    """A context reserving the estimated memory of decoding ``image`` (header read only)."""
    width, height = image.size
    high = image.mode not in _EIGHT_BIT
    core = _CORE_BYTES.get(image.mode, 4)
    converted = 0 if image.mode in ("L", "RGB") or high else 4  # convert("RGB") copy
    return _BUDGET.reserve(width * height * (core + converted + (12 if high else 3)))


def check_bit_depth(bit_depth) -> None:
    """A ``ValueError`` unless ``bit_depth`` is ``None`` or an int in [1, 16]."""
    if bit_depth is not None and (isinstance(bit_depth, bool)
                                  or not isinstance(bit_depth, int)
                                  or not 1 <= bit_depth <= 16):
        raise ValueError(f"bit_depth must be None or an int in [1, 16], got {bit_depth!r}.")


def image_pixels(image: Image.Image, bit_depth: int | None = None) -> np.ndarray:
    """The pixels of an opened image: RGB ``uint8`` ``(H, W, 3)``, or float32 in [0, 1]
    for images of more than 8 bits per sample (see the module docstring).

    Raises ``ValueError`` naming the problem for ranges that cannot be read faithfully.
    """
    check_bit_depth(bit_depth)
    if image.mode in _EIGHT_BIT and bit_depth is not None:
        raise ValueError(f"bit_depth={bit_depth} is for images of more than 8 bits per "
                         f"sample; this one has mode {image.mode} (8 bits). Pass "
                         "bit_depth=None for 8-bit images.")
    if image.getexif().get(0x0112, 1) != 1:  # rotated or mirrored: a rotated copy
        image = ImageOps.exif_transpose(image)
    if image.mode in _EIGHT_BIT:
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        return _stripes(image, np.uint8, lambda rows: rows)
    if image.mode in _SIXTEEN_BIT or image.mode == "I":
        return _integer_pixels(image, bit_depth)
    if image.mode == "F":
        if bit_depth is not None:
            raise ValueError(f"bit_depth={bit_depth} is for integer images; this one holds "
                             "32-bit floats.")
        return _float_pixels(image)
    raise ValueError(f"images of mode {image.mode!r} are not supported: save it as 8- or "
                     "16-bit grayscale or RGB.")


def _stripes(image: Image.Image, dtype, scale) -> np.ndarray:
    """``scale(pixels)`` of ``image`` as ``(H, W, 3)`` ``dtype``, filled a stripe at a time."""
    width, height = image.size
    out = np.empty((height, width, 3), dtype=dtype)
    rows = max(1, _STRIPE_BYTES // max(1, width * 4))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        stripe = scale(np.asarray(image.crop((0, top, width, bottom))))
        out[top:bottom] = stripe if stripe.ndim == 3 else stripe[..., None]
    return out


def _integer_pixels(image: Image.Image, bit_depth: int | None) -> np.ndarray:
    low, high = image.getextrema()
    white = 65535 if bit_depth is None else 2**bit_depth - 1
    if low < 0 or high > white:
        what = "16 bits (0-65535)" if bit_depth is None else f"bit_depth={bit_depth} " \
            f"(0-{white})"
        raise ValueError(
            f"its values span [{low}, {high}], outside {what}: a {image.mode} image of "
            "another range (signed or 32-bit) has no known scale. Convert it to 16-bit "
            "unsigned, or pass the bit_depth its values use."
        )
    return _stripes(image, np.float32, lambda rows: rows.astype(np.float32) / white)


def _float_pixels(image: Image.Image) -> np.ndarray:
    pixels = _stripes(image, np.float32, lambda rows: rows.astype(np.float32, copy=False))
    low, high = pixels.min(), pixels.max()  # NaN propagates (Pillow's extrema skip it)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
        raise ValueError(
            f"it is a float image with values in [{low}, {high}]; float images must lie in "
            "[0, 1] (NaN and infinity are refused). Rescale it to [0, 1], or save it as "
            "8- or 16-bit."
        )
    return pixels
