"""Tests for the batched MoCo-v2 augmentation in :mod:`skmsc.nn.augment`."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

import skmsc.nn.augment
from skmsc.nn.augment import (
    _adjust_brightness,
    _adjust_contrast,
    _adjust_hue,
    _adjust_saturation,
    _color_jitter,
    _crop_boxes,
    _gaussian_blur,
    _resample_boxes,
    _roi_align_boxes,
    random_views,
)

# Everything but the crop switched off.
NO_COLOUR = {"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": 0.0, "flip_p": 0.0}
# Additionally a crop that is always the whole (square) image.
PLAIN = {**NO_COLOUR, "scale": (1.0, 1.0), "ratio": (1.0, 1.0)}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def noise(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=gen(seed), dtype=dtype)


# --------------------------------------------------------------------------- output contract


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("n", "height", "width", "size"),
    [(6, 28, 28, 32), (4, 50, 40, 24), (1, 500, 400, 32), (1, 16, 16, 16)],
)
def test_shape_dtype_device_and_range(device, n, height, width, size):
    images = noise(n, 3, height, width).to(device)
    out = random_views(images, size, gen(), jitter_p=1.0, grayscale_p=0.5, blur_p=1.0)
    assert out.shape == (n, 3, size, size)
    assert out.dtype == images.dtype
    assert out.device == images.device
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_float64_in_float64_out():
    out = random_views(noise(3, 3, 20, 30, dtype=torch.float64), 12, gen())
    assert out.dtype == torch.float64 and out.shape == (3, 3, 12, 12)


def test_input_not_modified():
    images = noise(8, 3, 30, 20)
    before = images.clone()
    random_views(images, 16, gen(), jitter_p=1.0, grayscale_p=1.0, blur_p=1.0, flip_p=1.0)
    assert torch.equal(images, before)


def test_same_seed_same_output_other_seed_other_output():
    images = noise(8, 3, 32, 32)
    a = random_views(images, 24, gen(1))
    b = random_views(images, 24, gen(1))
    c = random_views(images, 24, gen(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_samples_in_one_batch_get_different_parameters():
    # The same image repeated must give different views: parameters are per sample.
    images = noise(1, 3, 32, 32).expand(8, -1, -1, -1)
    out = random_views(images, 24, gen())
    assert all(not torch.allclose(out[0], out[i]) for i in range(1, 8))


def test_global_rng_state_untouched():
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what we check
    random_views(noise(4, 3, 20, 20), 16, gen(), jitter_p=1.0, grayscale_p=1.0, blur_p=1.0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert random.getstate() == py_state


@pytest.mark.parametrize(
    "kwargs",
    [
        {"output_size": 1},
        {"output_size": 8.0},
        {"scale": (0.5, 0.2)},
        {"ratio": (0.0, 1.0)},
        {"jitter": (0.4, 0.4, 0.4, 0.6)},
        {"blur_sigma": (0.0, 1.0)},
    ],
)
def test_invalid_arguments_raise(kwargs):
    kwargs = {"output_size": 8, **kwargs}
    with pytest.raises((ValueError, TypeError)):
        random_views(noise(2, 3, 10, 10), generator=gen(), **kwargs)


def test_bad_images_and_generator_raise():
    with pytest.raises(ValueError):
        random_views(noise(2, 1, 10, 10), 8, gen())
    with pytest.raises(TypeError):
        random_views(torch.zeros(2, 3, 10, 10, dtype=torch.uint8), 8, gen())
    with pytest.raises(TypeError):
        random_views(noise(2, 3, 10, 10), 8, 0)


# --------------------------------------------------------------------------- random resized crop


# roi_align and interpolate form the same convex combination of at most 4 (upsampling) or of
# the same 2x2 block (integer downsampling) of float32 values, summed in a different order:
# the results differ by a few ulp (< 1e-6). 1e-5 keeps a margin but is 4 orders of magnitude
# below the error of a half-pixel misalignment on a noise image (~0.1).
RESIZE_ATOL = 1e-5


@pytest.mark.parametrize(
    ("side", "size", "mode"),
    [(20, 20, "nearest"), (20, 48, "bilinear"), (64, 32, "area"), (60, 20, "area")],
)
def test_whole_image_crop_equals_plain_resize(side, size, mode):
    images = noise(3, 3, side, side)
    out = random_views(images, size, gen(), **PLAIN)
    if mode == "bilinear":
        expected = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    else:  # identity or an integer shrink: averaging of whole input pixels
        expected = F.interpolate(images, size=size, mode=mode)
    torch.testing.assert_close(out, expected, atol=RESIZE_ATOL, rtol=0)


def _inside(start, stop, size):
    """Output pixels whose roi_align sample lies between the first and last crop pixel centre."""
    pos = start - 0.5 + (torch.arange(size) + 0.5) * (stop - start) / size
    return (pos >= start) & (pos <= stop - 1)


def test_crop_resamples_the_drawn_box():
    # The crop boxes are the first draws, so the same seed reproduces them. Crops of a 16x16
    # image upscaled to 40 pixels are plain bilinear resizes of the cropped pixels, except in
    # the outer half pixel where roi_align interpolates towards the pixels just outside the
    # box (torchvision crops first and so repeats the edge pixel); those are left out.
    images = noise(12, 3, 16, 16)
    out = random_views(images, 40, gen(3), **NO_COLOUR)
    boxes = _crop_boxes(12, 16, 16, (0.2, 1.0), (3 / 4, 4 / 3), gen(3)).long().tolist()
    assert len({tuple(b) for b in boxes}) > 1
    for view, image, (x1, y1, x2, y2) in zip(out, images, boxes, strict=True):
        crop = image[None, :, y1:y2, x1:x2]
        expected = F.interpolate(crop, size=40, mode="bilinear", align_corners=False)[0]
        rows, cols = _inside(y1, y2, 40), _inside(x1, x2, 40)
        assert rows.sum() > 30 and cols.sum() > 30
        torch.testing.assert_close(view[:, rows][:, :, cols], expected[:, rows][:, :, cols],
                                   atol=RESIZE_ATOL, rtol=0)


@pytest.mark.parametrize(("side", "size"), [(16, 40), (30, 30), (40, 24), (224, 224)])
def test_crops_equal_roi_align_whichever_path_computes_them(side, size):
    # Boxes no larger than the output go through grid_sample, larger ones through roi_align
    # (with side 40 -> 24 both kinds occur in one batch): every view equals roi_align's.
    images = noise(24, 3, side, side)
    boxes = _crop_boxes(24, side, side, (0.2, 1.0), (3 / 4, 4 / 3), gen(7))
    larger = ((boxes[:, 2:] - boxes[:, :2]) > size).any(dim=1)
    if (side, size) == (40, 24):
        assert 0 < larger.sum() < 24
    else:
        assert not larger.any()
    out = _resample_boxes(images, boxes, size)
    # Coordinates pass through grid_sample's [-1, 1] in float32: ~1e-5 of a pixel at 224.
    torch.testing.assert_close(out, _roi_align_boxes(images, boxes, size), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (500, 400), (28, 90)])
def test_crop_boxes_follow_torchvision_semantics(height, width):
    scale, ratio = (0.2, 1.0), (3 / 4, 4 / 3)
    boxes = _crop_boxes(4000, height, width, scale, ratio, gen())
    x1, y1, x2, y2 = boxes.unbind(1)
    w, h = x2 - x1, y2 - y1
    assert torch.equal(boxes, boxes.round())
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= width).all() and (y2 <= height).all()
    assert (w > 0).all() and (h > 0).all()
    # Sizes are rounded from a target area/aspect ratio: allow half a pixel on each side.
    area = height * width
    assert ((w + 0.5) * (h + 0.5) >= scale[0] * area).all()
    assert ((w - 0.5) * (h - 0.5) <= scale[1] * area).all()
    assert ((w + 0.5) / (h - 0.5) >= ratio[0]).all() and ((w - 0.5) / (h + 0.5) <= ratio[1]).all()
    # Offsets are uniform over the free range, not e.g. always centred.
    for start, free in [(x1, width - w), (y1, height - h)]:
        where = start[free > 0] / free[free > 0]
        assert (where < 0.25).float().mean() > 0.2 and (where > 0.75).float().mean() > 0.2
    if height == width:  # log-uniform aspect ratio: about as many wide as tall crops
        assert 0.4 < (w > h).float().mean() < 0.6


def test_crop_falls_back_to_centre_crop():
    # No crop of a 40x40 image has full area and aspect ratio 2 -> torchvision's fallback:
    # full width, height round(40 / 2), centred.
    boxes = _crop_boxes(5, 40, 40, (1.0, 1.0), (2.0, 2.0), gen())
    assert torch.equal(boxes, torch.tensor([[0.0, 10.0, 40.0, 30.0]]).expand(5, 4))
    # A 30x90 image is wider than ratio allows: full height, width round(30 * 4 / 3).
    boxes = _crop_boxes(3, 30, 90, (1.0, 1.0), (3 / 4, 4 / 3), gen())
    assert torch.equal(boxes, torch.tensor([[25.0, 0.0, 65.0, 30.0]]).expand(3, 4))


# --------------------------------------------------------------------------- colour jitter


def test_brightness_only_jitter_of_constant_images():
    colours = torch.tensor([[0.3, 0.5, 0.6], [0.1, 0.2, 0.7], [0.5, 0.5, 0.5]]).repeat(20, 1)
    images = colours[:, :, None, None].expand(-1, -1, 24, 24)
    out = random_views(images, 16, gen(), **{**NO_COLOUR, "jitter_p": 1.0},
                       jitter=(0.4, 0.0, 0.0, 0.0))
    # Constant per image and channel ...
    flat = out.flatten(2)
    torch.testing.assert_close(flat, flat[..., :1].expand_as(flat), atol=1e-6, rtol=0)
    # ... and every channel scaled by the same factor in [0.6, 1.4].
    factor = flat[..., 0] / colours
    torch.testing.assert_close(factor, factor[:, :1].expand_as(factor), atol=1e-5, rtol=0)
    assert (factor >= 0.6 - 1e-6).all() and (factor <= 1.4 + 1e-6).all()
    assert factor.std() > 0.1  # factors vary per sample


def _per_image(fn, images, factors):
    return torch.stack([fn(img, float(f)) for img, f in zip(images, factors, strict=True)])


# torchvision's grayscale uses 0.2989 for red where we use 0.299; the blend target therefore
# differs by at most 1e-4 * |1 - factor| < 1e-4.
@pytest.mark.parametrize(
    ("ours", "theirs", "low", "high", "atol"),
    [
        (_adjust_brightness, TF.adjust_brightness, 0.6, 1.4, 1e-6),
        (_adjust_contrast, TF.adjust_contrast, 0.6, 1.4, 2e-4),
        (_adjust_saturation, TF.adjust_saturation, 0.0, 2.0, 2e-4),
        (_adjust_hue, TF.adjust_hue, -0.5, 0.5, 1e-5),
    ],
)
def test_jitter_operations_match_torchvision(ours, theirs, low, high, atol):
    images = noise(8, 3, 12, 12)
    factors = low + (high - low) * noise(8, seed=1)
    out = ours(images, factors.view(-1, 1, 1, 1))
    expected = _per_image(theirs, images, factors)
    torch.testing.assert_close(out, expected, atol=atol, rtol=0)
    assert not torch.allclose(out, images, atol=1e-3)


def test_color_jitter_applies_operations_in_the_given_order():
    images = noise(6, 3, 10, 10)
    factors = torch.tensor([1.3, 0.7, 1.8, 0.25]).expand(6, 4)
    ops = [_adjust_brightness, _adjust_contrast, _adjust_saturation, _adjust_hue]
    results = []
    for order in ([0, 1, 2, 3], [3, 2, 1, 0]):
        expected = images
        for i in order:
            expected = ops[i](expected, factors[:, i].view(-1, 1, 1, 1))
        out = _color_jitter(images, factors, order, (0.4, 0.4, 0.4, 0.1))
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
        results.append(out)
    assert not torch.allclose(results[0], results[1], atol=1e-3)  # the order matters
    # A zero strength switches its operation off.
    out = _color_jitter(images, factors, [0, 1, 2, 3], (0.4, 0.0, 0.0, 0.0))
    torch.testing.assert_close(out, _adjust_brightness(images, factors[:, :1, None, None]))


def test_jitter_order_is_random_per_call(monkeypatch):
    orders = []

    def spy(images, factors, order, jitter):
        orders.append(tuple(order))
        return _color_jitter(images, factors, order, jitter)

    monkeypatch.setattr(skmsc.nn.augment, "_color_jitter", spy)
    for seed in range(40):
        random_views(noise(2, 3, 8, 8), 8, gen(seed), jitter_p=1.0)
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert len(set(orders)) > 10


def _colour_test_image():
    # Noise plus the corner cases of the HSV conversion: primaries, secondaries, greys,
    # black, white and ties between the largest channels.
    special = torch.tensor(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0],
         [1, 1, 1], [0.5, 0.5, 0.5], [0.7, 0.7, 0.2], [0.2, 0.7, 0.7], [0.7, 0.2, 0.7]],
        dtype=torch.float32,
    ).T.reshape(1, 3, 3, 4)
    return torch.cat([special, noise(1, 3, 3, 4)], dim=-1)


def test_zero_hue_shift_keeps_colours():
    images = _colour_test_image()
    torch.testing.assert_close(_adjust_hue(images, torch.zeros(1, 1, 1, 1)), images,
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("shift", [-0.5, -0.1, 0.05, 1 / 3, 0.5])
def test_hue_of_corner_case_colours_matches_torchvision(shift):
    # Primaries, greys, black, white and ties between the largest channels.
    images = _colour_test_image()
    out = _adjust_hue(images, torch.full((1, 1, 1, 1), shift))
    torch.testing.assert_close(out[0], TF.adjust_hue(images[0], shift), atol=1e-5, rtol=0)


def test_hue_rotation_of_known_colours():
    # A third of a turn: red -> green, yellow -> cyan, dark blue -> dark red; grey stays.
    colours = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 0, 0.5], [0.4, 0.4, 0.4]])
    out = _adjust_hue(colours.T[None, :, None, :], torch.full((1, 1, 1, 1), 1 / 3))
    expected = torch.tensor([[0.0, 1, 0], [0, 1, 1], [0.5, 0, 0], [0.4, 0.4, 0.4]])
    torch.testing.assert_close(out[0, :, 0].T, expected, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- grayscale, blur, flip


def test_grayscale_gives_three_equal_channels():
    images = noise(5, 3, 20, 20)
    out = random_views(images, 16, gen(), **{**PLAIN, "grayscale_p": 1.0})
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    plain = random_views(images, 16, gen(), **PLAIN)
    luma = 0.299 * plain[:, 0] + 0.587 * plain[:, 1] + 0.114 * plain[:, 2]
    torch.testing.assert_close(out[:, 0], luma, atol=1e-6, rtol=0)
    assert not torch.equal(plain[:, 0], plain[:, 1])


def test_flip_mirrors_the_image():
    images = noise(4, 3, 18, 18)
    mirrored = random_views(images, 18, gen(), **{**PLAIN, "flip_p": 1.0})
    unchanged = random_views(images, 18, gen(), **PLAIN)
    # The whole-image crop resamples at the pixel centres, exact up to coordinate rounding.
    torch.testing.assert_close(unchanged, images, atol=RESIZE_ATOL, rtol=0)
    torch.testing.assert_close(mirrored, unchanged.flip(-1), atol=0, rtol=0)


def test_flip_fraction():
    ramp = torch.linspace(0, 1, 8).expand(2000, 3, 8, 8)  # left-right asymmetric
    out = random_views(ramp, 8, gen(), **{**PLAIN, "flip_p": 0.5})
    flipped = out[:, 0, 0, 0] > out[:, 0, 0, -1]
    assert 0.45 <= flipped.float().mean() <= 0.55


@pytest.mark.parametrize(
    ("option", "p", "extra"),
    [
        ("jitter_p", 0.8, {}),
        ("grayscale_p", 0.2, {}),
        # Sigma >= 0.5 so that every blurred sample visibly changes (sigma 0.1 is a no-op).
        ("blur_p", 0.5, {"blur_sigma": (0.5, 2.0)}),
    ],
)
def test_per_sample_probabilities(option, p, extra):
    images = noise(2000, 3, 8, 8)
    plain = random_views(images, 8, gen(), **PLAIN)
    out = random_views(images, 8, gen(), **{**PLAIN, option: p, **extra})
    changed = (out - plain).flatten(1).abs().amax(1) > 1e-4
    assert p - 0.05 <= changed.float().mean() <= p + 0.05
    # Parameters are drawn whatever the probability, so the selected samples must look exactly
    # as they do when every sample is selected (catches misaligned per-sample parameters).
    always = random_views(images, 8, gen(), **{**PLAIN, option: 1.0, **extra})
    torch.testing.assert_close(out[changed], always[changed], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[~changed], plain[~changed], atol=1e-6, rtol=0)


@pytest.mark.parametrize(("size", "kernel_size"), [(28, 3), (64, 7), (224, 23)])
def test_blur_kernel_size_and_values_match_torchvision(size, kernel_size):
    images = noise(2, 3, size, size)
    out = random_views(images, size, gen(), **{**PLAIN, "blur_p": 1.0}, blur_sigma=(1.5, 1.5))
    expected = TF.gaussian_blur(images, [kernel_size, kernel_size], [1.5, 1.5])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kernel_size", [5, 23])
def test_per_sample_blur_matches_torchvision(kernel_size):
    # sigma 0.1 with 23 taps: the kernel's tails (e^-50 and below) are the weights zeroed
    # to keep subnormal floats out of the convolution.
    images = noise(5, 3, 30, 30)
    sigma = torch.tensor([0.1, 0.3, 0.8, 1.5, 2.0])
    out = _gaussian_blur(images, sigma, kernel_size)
    expected = torch.stack(
        [TF.gaussian_blur(img, [kernel_size] * 2, [float(s)])
         for img, s in zip(images, sigma, strict=True)]
    )
    # 2 x 23 float32 products summed in another order than torchvision's: a few ulp.
    torch.testing.assert_close(out, expected, atol=3e-6, rtol=0)


def test_blur_reduces_noise_variance_and_keeps_constants():
    images = torch.cat([noise(4, 3, 32, 32), torch.full((2, 3, 32, 32), 0.37)])
    out = random_views(images, 32, gen(), **{**PLAIN, "blur_p": 1.0}, blur_sigma=(1.0, 2.0))
    assert (out[:4].var(dim=(1, 2, 3)) < 0.5 * images[:4].var(dim=(1, 2, 3))).all()
    torch.testing.assert_close(out[4:], images[4:], atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    images = noise(16, 3, 40, 30)
    cpu = random_views(images, 24, gen(5))
    cuda = random_views(images.cuda(), 24, gen(5))
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=0)
