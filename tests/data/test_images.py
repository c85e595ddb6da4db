"""The evaluation transform (:func:`skmsc.nn._preprocess.eval_inputs`) against the reference's
torchvision pipeline on PIL images: Resize(short side) + CenterCrop + ToTensor + Normalize."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import skmsc.nn._preprocess
from skmsc.nn._preprocess import eval_inputs, to_unit_tensor
from skmsc.nn.backbones import BACKBONES

CPU = torch.device("cpu")
MODES = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}


def _reference(images: np.ndarray, spec, image_size: int) -> torch.Tensor:
    short = round(image_size / spec.crop_fraction)
    transform = T.Compose([
        T.Resize(short, interpolation=MODES[spec.interpolation]),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(spec.mean, spec.std),
    ])
    return torch.stack([transform(Image.fromarray(image).convert("RGB")) for image in images])


def _photo_like(n, height, width, seed=0, grey=False):
    # Smooth content plus noise: resampling errors show on edges and texture alike.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = 127 + 100 * np.sin(7 * xx + 3 * yy)[None]
    if not grey:
        base = np.repeat(base[..., None], 3, axis=-1) + np.array([0, -30, 30])
    noise = rng.normal(0, 25, (n,) + base.shape[1:])
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet50", "resnet18"])
@pytest.mark.parametrize(("height", "width", "image_size"),
                         [(224, 224, 224), (37, 51, 32), (300, 211, 64), (28, 28, 64)])
def test_uint8_images_match_the_reference_pil_pipeline(backbone, height, width, image_size):
    spec = BACKBONES[backbone]
    images = _photo_like(3, height, width)
    ours = eval_inputs(images, spec, image_size, CPU)
    expected = _reference(images, spec, image_size)
    assert ours.shape == expected.shape == (3, 3, image_size, image_size)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    # torch's uint8 kernels and PIL round to integer levels separately: at most one level
    # apart (1/255 before normalisation) on a few pixels, the same almost everywhere.
    levels = (ours - expected) * torch.tensor(spec.std).view(1, 3, 1, 1) * 255
    assert levels.abs().max() <= 1 + 1e-3
    assert (levels.abs() > 0.5).float().mean() < 0.02


def test_grayscale_images_equal_their_rgb_copies():
    spec = BACKBONES["efficientnet_lite0"]
    grey = _photo_like(2, 40, 30, grey=True)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    torch.testing.assert_close(eval_inputs(grey, spec, 32, CPU), eval_inputs(rgb, spec, 32, CPU),
                               atol=0, rtol=0)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet50"])
def test_float_images_are_resized_like_uint8_without_rounding(backbone):
    spec = BACKBONES[backbone]
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    images = _photo_like(3, 40, 30)
    as_float = eval_inputs(images / 255.0, spec, 32, CPU) * std * 255  # in levels
    assert not torch.equal(as_float, as_float.round())
    # The same clipped passes: apart only by the uint8 rounding, half a level per pass.
    levels = as_float - eval_inputs(images, spec, 32, CPU) * std * 255
    assert levels.abs().max() <= 1.5
    assert levels.abs().mean() < 0.35


def test_integer_dtypes_other_than_uint8_give_the_same_inputs():
    spec = BACKBONES["efficientnet_lite0"]
    images = _photo_like(2, 30, 30)
    torch.testing.assert_close(eval_inputs(images.astype(np.int64), spec, 32, CPU),
                               eval_inputs(images, spec, 32, CPU), atol=0, rtol=0)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet50"])
@pytest.mark.parametrize(("height", "width"), [(224, 224), (28, 28), (300, 211)])
def test_devices_without_uint8_kernels_emulate_them(monkeypatch, backbone, height, width):
    # The float emulation (used on CUDA) against torch's uint8 CPU kernels.
    spec = BACKBONES[backbone]
    images = _photo_like(3, height, width)
    uint8_kernels = eval_inputs(images, spec, 64, CPU)
    monkeypatch.setattr(skmsc.nn._preprocess, "UINT8_RESIZE_DEVICES", ())
    emulated = eval_inputs(images, spec, 64, CPU)
    levels = (emulated - uint8_kernels) * torch.tensor(spec.std).view(1, 3, 1, 1) * 255
    assert levels.abs().max() <= 2 + 1e-3
    assert (levels.abs() > 0.5).float().mean() < 0.1


def test_no_resize_when_the_image_already_has_the_size():
    spec = BACKBONES["resnet18"]  # crop_fraction 1: a 32x32 image is used as it is
    images = _photo_like(2, 32, 32)
    expected = (to_unit_tensor(images, CPU) - torch.tensor(spec.mean).view(1, 3, 1, 1)) / (
        torch.tensor(spec.std).view(1, 3, 1, 1))
    torch.testing.assert_close(eval_inputs(images, spec, 32, CPU), expected, atol=1e-6, rtol=0)


def test_input_is_not_modified():
    images = _photo_like(2, 50, 40)
    before = images.copy()
    eval_inputs(images, BACKBONES["efficientnet_lite0"], 32, CPU)
    np.testing.assert_array_equal(images, before)
