"""torch's uint8 antialiased resize, written out as two integer matrices (for export).

On the CPU, :func:`skmsc.nn._preprocess.eval_inputs` resizes uint8 images with torch's
uint8 kernels, which follow Pillow: one pass along the width, then one along the height;
each output pixel is ``clip((sum(pixel * w) + 2**(p - 1)) >> p, 0, 255)`` with integer
weights ``w`` (the filter's double weights scaled by ``2**p`` and rounded) and one
precision ``p`` per pass. The same passes done in float differ from them by one or two
levels on up to 5 % of the pixels (``docs/performance.md``), which moves the scores by
far more than float rounding. For a fixed input size each pass is a fixed integer
matrix, so an exported graph can reproduce the uint8 kernels bit for bit with a matrix
product, an addition, a floor and a clip (``tests/front_ends/test_onnx_export.py`` checks them
against ``torch.nn.functional.interpolate`` on random images of many sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["FixedPointPass", "filter_weights", "fixed_point_pass"]

# Filter support (in input pixels, at scale 1) of each interpolation, as torch and Pillow.
_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}
# Pillow's and torch's bicubic coefficient for antialiased resizing.
_BICUBIC_A = -0.5
# The largest weight precision torch's uint8 kernels use, and the int16 weight range.
_MAX_PRECISION = 22
_INT16_LIMIT = 1 << 15
# float32 adds integers exactly below this magnitude.
_FLOAT32_EXACT = 1 << 24


def _filter(mode: str, x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    if mode == "bilinear":
        return np.maximum(0.0, 1.0 - x)
    a = _BICUBIC_A
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def filter_weights(in_size: int, out_size: int, mode: str) -> np.ndarray:
    """The antialiased resampling weights ``(out_size, in_size)`` in float64, rows summing to 1.

    Each output pixel covers ``in_size / out_size`` input pixels; when shrinking, the
    filter is stretched by that factor (antialiasing).

    Examples
    --------
    >>> from skmsc.nn._fixed_point_resize import filter_weights
    >>> w = filter_weights(4, 2, "bilinear")
    >>> w.round(3).tolist(), w.sum(axis=1).tolist()
    ([[0.429, 0.429, 0.143, 0.0], [0.0, 0.143, 0.429, 0.429]], [1.0, 1.0])
    """
    if mode not in _SUPPORT:
        raise ValueError(f"No fixed-point weights for interpolation {mode!r}; "
                         f"supported: {sorted(_SUPPORT)}.")
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = _SUPPORT[mode] * stretch
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = scale * (i + 0.5)
        first = max(int(center - support + 0.5), 0)
        last = min(int(center + support + 0.5), in_size)
        taps = np.arange(first, last)
        w = _filter(mode, (taps - center + 0.5) / stretch)
        total = w.sum()
        weights[i, taps] = w / total if total != 0 else w
    return weights


@dataclass(frozen=True)
class FixedPointPass:
    """One pass of a uint8 resize: ``clip(floor((weights @ x + 2**(p-1)) / 2**p), 0, 255)``.

    ``weights`` ``(out, in)`` holds integers (int16 range); ``precision`` is ``p``.
    ``float32_exact`` says whether every sum stays below 2**24 in magnitude, so that a
    float32 matrix product computes it exactly (else use float64).
    """

    weights: np.ndarray
    precision: int

    @property
    def float32_exact(self) -> bool:
        largest = 255 * np.abs(self.weights).sum(axis=1).max() + (1 << self.precision)
        return bool(largest < _FLOAT32_EXACT)

    def apply(self, pixels: torch.Tensor, axis: int) -> torch.Tensor:
        """This pass along ``axis`` (-1: width, -2: height) of float integer-valued pixels.

        Matrix products, an addition, a floor and a clip: operations every ONNX runtime
        has, exact in the dtype of ``pixels`` when :attr:`float32_exact` allows float32.
        """
        weights = torch.from_numpy(self.weights).to(pixels.dtype)
        summed = pixels @ weights.T if axis == -1 else weights @ pixels
        shifted = torch.floor((summed + float(1 << (self.precision - 1)))
                              * (1.0 / (1 << self.precision)))
        return shifted.clamp(0.0, 255.0)


def fixed_point_pass(in_size: int, out_size: int, mode: str) -> FixedPointPass:
    """The integer weights and precision torch's uint8 kernel uses for one resize pass.

    As torch (and Pillow): the precision is the largest ``p`` (at most 22) for which the
    largest weight times ``2**(p + 1)`` stays below 2**15; weights are rounded half away
    from zero.

    Examples
    --------
    >>> from skmsc.nn._fixed_point_resize import fixed_point_pass
    >>> double = fixed_point_pass(2, 4, "bilinear")
    >>> double.precision, double.weights.astype(int).tolist(), double.float32_exact
    (14, [[16384, 0], [12288, 4096], [4096, 12288], [0, 16384]], True)
    """
    weights = filter_weights(in_size, out_size, mode)
    largest = weights.max()
    precision = 0
    while precision < _MAX_PRECISION:
        if int(0.5 + largest * (1 << (precision + 1))) >= _INT16_LIMIT:
            break
        precision += 1
    scaled = weights * (1 << precision)
    rounded = np.where(scaled < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5))
    return FixedPointPass(rounded, precision)
