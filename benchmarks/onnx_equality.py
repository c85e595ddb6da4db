"""How exactly the exported ONNX file scores as the detector, per backbone code path.

Fits ``precision="float32"`` detectors (EfficientNet-Lite0 with its ImageNet weights,
ResNet18 and ResNet50 with random weights; 1 epoch, 32 px) on 40 crops of 40x48 px of
scikit-image's photographs, exports each with :func:`skmsc.onnx.export_onnx` and prints
the largest absolute difference between ``ONNXDetector.score_samples`` and the
detector's ``score_samples`` on 30 other crops (cat, astronaut, rocket). For comparison
it also prints how far the detector's scores move when its uint8 resize runs as float
passes with rounding (what an export with float resize matrices would compute) instead
of torch's uint8 kernels.

    python -m benchmarks.onnx_equality
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from skimage import data

import skmsc.nn._preprocess as preprocess
from skmsc import MeanShiftedContrastiveDetector
from skmsc.onnx import ONNXDetector, export_onnx

BACKBONES = [("efficientnet_lite0", "imagenet"), ("resnet18", None), ("resnet50", None)]


def crops(photo, n, rng, size=(40, 48)):
    tops = rng.integers(0, photo.shape[0] - size[0], n)
    lefts = rng.integers(0, photo.shape[1] - size[1], n)
    return np.stack([photo[t : t + size[0], s : s + size[1]]
                     for t, s in zip(tops, lefts, strict=True)])


def main():
    rng = np.random.default_rng(0)
    train = np.concatenate([crops(data.chelsea(), 30, rng), crops(data.coffee(), 10, rng)])
    test = np.concatenate([crops(data.chelsea(), 10, rng), crops(data.astronaut(), 10, rng),
                           crops(data.rocket(), 10, rng)])
    print("| backbone | exported max abs score diff | float-pass resize abs score diff, max "
          "(median) | score range |")
    print("|---|---|---|---|")
    for backbone, weights in BACKBONES:
        det = MeanShiftedContrastiveDetector(
            backbone, weights=weights, epochs=1, batch_size=8, image_size=32,
            precision="float32", early_stopping=False, random_state=0,
        ).fit(train)
        expected = det.score_samples(test)
        with tempfile.TemporaryDirectory() as folder:
            exported = ONNXDetector(export_onnx(det, Path(folder) / "det.onnx"))
            onnx_diff = np.abs(exported.score_samples(test) - expected).max()
        kernels = preprocess.UINT8_RESIZE_DEVICES
        preprocess.UINT8_RESIZE_DEVICES = ()  # the float passes, as on a GPU
        try:
            float_diffs = np.abs(det.score_samples(test) - expected)
        finally:
            preprocess.UINT8_RESIZE_DEVICES = kernels
        print(f"| {backbone} | {onnx_diff:.2g} | {float_diffs.max():.2g} (median "
              f"{np.median(float_diffs):.2g}) | "
              f"[{expected.min():.3g}, {expected.max():.3g}] |", flush=True)


if __name__ == "__main__":
    main()
