"""Item: integer images in a small range (load_digits().images is 0-16) are not scored
silently as near-black 0-255 images: the one image check warns, naming the range and
the fix."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from skmsc import MeanShiftedContrastiveDetector
from skmsc._checks import check_image_array

FIX = r"Scale them to 0-255.*\(X \* \(255 / 16\)\)\.astype\(np\.uint8\).*floats in \[0, 1\]"


@pytest.mark.parametrize("dtype", [int, np.int32, np.uint8, np.uint16])
def test_small_integer_range_warns_with_the_range_and_the_fix(dtype):
    images = load_digits().images.astype(dtype)  # 0-16
    before = images.copy()
    with pytest.warns(UserWarning, match=r"values span \[0, 16\], far below 255.*" + FIX):
        check_image_array(images)
    np.testing.assert_array_equal(images, before)  # nothing changed


@pytest.mark.parametrize("images", [
    np.zeros((2, 8, 8), dtype=np.uint8),                    # all black: nothing to rescale
    np.full((2, 8, 8), 32, dtype=np.int64),                 # above the limit
    np.random.default_rng(0).integers(0, 256, (2, 8, 8)),   # 0-255 ints
    load_digits().images / 16.0,                            # floats in [0, 1]
    load_digits().images.astype(np.float32),                # float 0-16: refused, no warning
])
def test_full_range_integer_float_and_black_images_do_not_warn(images):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            check_image_array(images)
        except ValueError:  # float images beyond [0, 1] are refused (not this item)
            assert images.dtype.kind == "f"


def test_the_detector_warns_at_fit_and_at_scoring_and_points_at_the_caller():
    images = load_digits().images.astype(int)[:12]
    det = MeanShiftedContrastiveDetector("efficientnet_lite0", weights=None, epochs=0,
                                         batch_size=4, image_size=16, random_state=0)
    with pytest.warns(UserWarning, match=r"span \[0, 16\]") as caught:
        det.fit(images)
    assert any(w.filename == __file__ for w in caught)
    with pytest.warns(UserWarning, match=r"span \[0, 16\]"):
        det.score_samples(images[:3])
