"""Section ``steps`` of speed.py: milliseconds per batch of each preprocessing step.

This section times the library's internals one by one, next to the slower way each
replaced, so unlike the other sections it calls private helpers of ``skmsc.nn.augment``
and ``skmsc.nn._preprocess`` on purpose: those are what it measures.
"""

from __future__ import annotations

import numpy as np
import torch

from skmsc.nn import augment
from skmsc.nn._preprocess import eval_inputs, network_input, to_unit_tensor
from skmsc.nn.backbones import BACKBONES

from ._harness import median_time, table


def section(args, device, out):
    rows = []
    for size in args.sizes:
        for name, fast, slow in _preprocessing_steps(args.batch_size, size, device):
            t_fast = median_time(fast, args.repeats, device) * 1e3
            t_slow = median_time(slow, args.repeats, device) * 1e3 if slow else None
            rows.append(dict(step=name, size=size, batch=args.batch_size, ms=t_fast,
                             replaced_ms=t_slow, speedup=t_slow / t_fast if slow else None))
            print(f"  {size}px {name}: {t_fast:.2f} ms"
                  + (f" (replaced: {t_slow:.2f} ms)" if slow else ""), flush=True)
    out["steps"] = rows
    return table(
        f"Preprocessing steps ({device.type}, EfficientNet-Lite0 preprocessing, batch "
        f"{args.batch_size}, median of {args.repeats}; uint8 input images of the output size)",
        ["step", "image px", "ms per batch", "the way it replaced, ms", "speed-up"],
        [[r["step"], r["size"], r["ms"], "" if r["replaced_ms"] is None else r["replaced_ms"],
          "" if r["speedup"] is None else r["speedup"]] for r in rows],
    )


def _preprocessing_steps(n, size, device):
    """(name, function, the slower way it replaced or None) for each step, on n images."""
    from skmsc.nn import augment

    spec = BACKBONES["efficientnet_lite0"]
    X = np.random.default_rng(0).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    images = to_unit_tensor(X, device)
    generator = torch.Generator().manual_seed(0)
    boxes = augment._crop_boxes(n, size, size, (0.2, 1.0), (3 / 4, 4 / 3), generator)
    factors = augment._jitter_factors(n, (0.4, 0.4, 0.4, 0.1), generator).float().to(device)
    sigma = (0.1 + 1.9 * torch.rand(n, generator=generator)).to(device)
    kernel_size = max(3, 2 * int(0.1 * size / 2) + 1)

    def two_views():
        return torch.cat([augment.random_views(images, size, generator) for _ in range(2)])

    views = two_views()

    def adjust(operation, i):
        return lambda: operation(images, factors[:, i].view(-1, 1, 1, 1))

    def eval_in_float():
        return eval_inputs(X, spec, size, device, uint8_kernels=False)

    return [
        ("uint8 batch to float NCHW (fit)", lambda: to_unit_tensor(X, device), None),
        ("crops (grid_sample where one sample per pixel)",
         lambda: augment._resample_boxes(images, boxes, size),
         lambda: augment._roi_align_boxes(images, boxes, size)),
        ("brightness", adjust(augment._adjust_brightness, 0), None),
        ("contrast", adjust(augment._adjust_contrast, 1), None),
        ("saturation", adjust(augment._adjust_saturation, 2), None),
        ("hue", adjust(augment._adjust_hue, 3), None),
        ("Gaussian blur (subnormal weights zeroed)",
         lambda: augment._gaussian_blur(images, sigma, kernel_size),
         lambda: _blur_keeping_subnormals(images, sigma, kernel_size)),
        ("two MoCo-v2 views", two_views, None),
        ("normalise the 2 x batch views to channels-last",
         lambda: network_input(views, spec), None),
        ("score input: resize, crop, normalise (uint8 kernels)",
         lambda: eval_inputs(X, spec, size, device), eval_in_float),
    ]


def _blur_keeping_subnormals(images, sigma, kernel_size):
    """``augment._gaussian_blur`` as it was before its kernel's subnormal tail was zeroed."""
    kernel = augment._gaussian_kernels(sigma, kernel_size, images)
    return augment._separable_convolution(images, kernel)
