"""Bad input, tried systematically: each case gets a clear error and the caller's data is kept.

The table below is the list of input cases the detector was tried on (fit and scoring).
The hypothesis tests then drive random shapes, dtypes and values through the validation
layer alone (no network), so they stay fast.
"""

import copy
import re

import numpy as np
import pytest
import torch
from conftest import FAST
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skmsc import MeanShiftedContrastiveDetector
from skmsc._checks import check_image_array, check_input_container
from skmsc.nn._preprocess import to_unit_tensor

# (case name, X, error type, regex the message must match: the problem, then the fix)
BAD_FIT_INPUTS = [
    ("nan", np.full((4, 8, 8), np.nan), ValueError, "NaN"),
    ("inf", np.full((4, 8, 8), np.inf), ValueError, "infinity"),
    ("1-d", np.zeros(5), ValueError, "(?s)Expected 2D array.*reshape"),
    ("5-d", np.zeros((4, 8, 8, 3, 1), np.uint8), ValueError, "5 dimensions.*Expected images"),
    ("rgba", np.zeros((4, 8, 8, 4), np.uint8), ValueError, r"RGBA\?\): drop alpha"),
    ("channels-first", np.zeros((4, 3, 8, 8), np.uint8), ValueError, "np.moveaxis"),
    ("one channel axis", np.zeros((4, 8, 8, 1), np.uint8), ValueError, r"X\[\.\.\., 0\]"),
    ("7 channels", np.zeros((4, 8, 8, 7), np.uint8), ValueError, "7 channels"),
    ("object strings", np.array([[1, "a"], [2, 3]], dtype=object), ValueError, "string"),
    ("unicode", np.array([["a", "b"], ["c", "d"]]), TypeError, "not numeric.*Decode"),
    ("bytes", np.array([[b"a"], [b"b"]]), TypeError, "not numeric"),
    ("complex", np.zeros((4, 8, 8), complex), ValueError, "Complex.*X.real"),
    ("bool images", np.zeros((4, 8, 8), bool), ValueError, "binary masks"),
    ("empty images", np.zeros((0, 8, 8)), ValueError, "0 samples"),
    ("empty features", np.zeros((0, 4)), ValueError, "0 samples"),
    ("no pixels", np.zeros((4, 0, 8)), ValueError, "no pixels"),
    ("empty list", [], ValueError, "empty list"),
    ("one sample", np.zeros((1, 8, 8)), ValueError, "n_samples=1"),
    ("float range", np.full((4, 8, 8), 2.0), ValueError, r"\[0, 1\].*Divide"),
    ("negative float", np.full((4, 8, 8), -0.5), ValueError, r"\[0, 1\]"),
    ("int range", np.full((4, 8, 8), 300, np.int32), ValueError, "0-255.*Rescale"),
    ("negative int", np.full((4, 8, 8), -1, np.int16), ValueError, "0-255"),
    ("mixed shapes", [np.zeros((8, 8)), np.zeros((9, 8)), np.zeros((8, 8))], ValueError,
     "different shapes.*item 1.*Resize"),
    ("mixed dtypes", [np.zeros((8, 8), np.uint8), np.zeros((8, 8)), np.zeros((8, 8))],
     ValueError, "different dtypes.*item 1.*convert all"),
    ("arrays and numbers", [np.zeros((8, 8)), 3, np.zeros((8, 8))], TypeError, "mixes arrays"),
    ("None", None, TypeError, "got NoneType"),
    ("dict", {"a": 1}, TypeError, "got dict"),
    ("string", "images/*.png", TypeError,
     r"string 'images/\*\.png', not a batch.*list_image_files.*glob\.glob"),
    ("scalar", 3.0, TypeError, "got float"),
]


@pytest.mark.parametrize(
    "X, error, match", [case[1:] for case in BAD_FIT_INPUTS], ids=[c[0] for c in BAD_FIT_INPUTS]
)
def test_bad_fit_input_names_problem_and_fix_and_leaves_data_alone(X, error, match):
    before = copy.deepcopy(X)
    det = MeanShiftedContrastiveDetector(**FAST, epochs=0)
    with pytest.raises(error, match=match):
        det.fit(X)
    if isinstance(X, np.ndarray):
        np.testing.assert_array_equal(X, before)
    assert not hasattr(det, "train_features_")


BAD_SCORE_INPUTS = [
    ("one rgb image", np.zeros((8, 8, 3)), ValueError, r"one image with 3 channels.*X\[None\]"),
    ("rgba", np.zeros((2, 8, 8, 4)), ValueError, "RGBA"),
    ("single image without batch axis", np.zeros((8, 8)), ValueError, r"X\[None\]"),
    ("empty", np.zeros((0, 8, 8)), ValueError, "0 samples"),
    ("nan", np.full((2, 8, 8), np.nan), ValueError, "NaN"),
    ("float range", np.full((2, 8, 8), 1.5), ValueError, r"\[0, 1\]"),
    ("strings", np.full((2, 8, 8), "x"), TypeError, "not numeric"),
    ("mixed dtypes", [np.zeros((8, 8), np.uint8), np.zeros((8, 8))], ValueError, "dtypes"),
]


@pytest.mark.parametrize(
    "X, error, match", [c[1:] for c in BAD_SCORE_INPUTS], ids=[c[0] for c in BAD_SCORE_INPUTS]
)
def test_bad_score_input_is_refused(fitted_lite0, X, error, match):
    before = copy.deepcopy(X)
    state = dict(fitted_lite0.__dict__)
    with pytest.raises(error, match=match):
        fitted_lite0.score_samples(X)
    assert fitted_lite0.__dict__.keys() == state.keys()
    if isinstance(X, np.ndarray):
        np.testing.assert_array_equal(X, before)


def test_single_sample_scores_like_in_a_batch(fitted_lite0, digits):
    X = digits[0][-10:]
    batch = fitted_lite0.score_samples(X)
    for i in (0, 9):
        one = fitted_lite0.score_samples(X[i : i + 1])
        assert one.shape == (1,)
        np.testing.assert_allclose(one[0], batch[i], atol=1e-5)
    assert fitted_lite0.predict(X[:1]).shape == (1,)
    # A list of one image and a read-only array work too.
    np.testing.assert_allclose(fitted_lite0.score_samples([X[0]]), batch[:1], atol=1e-5)
    frozen = X.copy()
    frozen.flags.writeable = False
    np.testing.assert_allclose(fitted_lite0.score_samples(frozen), batch, atol=1e-5)


def test_list_of_equal_images_is_accepted_like_an_array(fitted_lite0, digits):
    X = (digits[0][-6:] * 255).astype(np.uint8)
    np.testing.assert_array_equal(
        fitted_lite0.score_samples(list(X)), fitted_lite0.score_samples(X)
    )


def test_float16_and_int_dtypes_are_accepted(fitted_lite0, digits):
    # Scored in float32: with bfloat16 features (precision="auto" on CPUs with native
    # bfloat16) the tiny float16 pixel rounding below moves scores by ~1e-2.
    detector = copy.deepcopy(fitted_lite0).set_params(precision="float32")
    X = np.round(digits[0][-6:] * 255) / 255
    reference = detector.score_samples(X)
    np.testing.assert_allclose(detector.score_samples(X.astype(np.float32)), reference,
                               atol=1e-4)
    # Integer images are resized to integer levels (see test_detector_images): every
    # integer dtype gives the uint8 result.
    as_uint8 = detector.score_samples((X * 255).astype(np.uint8))
    for converted in ((X * 255).astype(np.uint16), (X * 255).astype(np.int64)):
        np.testing.assert_allclose(detector.score_samples(converted), as_uint8, atol=1e-4)
    # float16 rounds pixels (11-bit mantissa): scores move a little, not a lot.
    np.testing.assert_allclose(
        detector.score_samples(X.astype(np.float16)), reference, atol=5e-3
    )


# ---------------------------------------------------------------- property-based tests
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16,
                          np.float32, np.float64, np.bool_, np.complex64])


def _elements(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        special = st.sampled_from([np.nan, np.inf, -np.inf])
        return st.floats(-2, 300, width=dtype.itemsize * 8) | special
    if dtype.kind == "c":
        return st.complex_numbers(max_magnitude=10, allow_nan=False, allow_infinity=False,
                                  width=dtype.itemsize * 8)
    if dtype.kind == "b":
        return st.booleans()
    info = np.iinfo(dtype)
    return st.integers(max(info.min, -5), min(info.max, 300))


@st.composite
def any_array(draw):
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype=dtype, shape=shape, elements=_elements(dtype)))


SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(any_array())
def test_check_image_array_accepts_only_valid_batches(X):
    before = X.copy()
    try:
        check_image_array(X)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith(("X ", "Float images", "Integer images"))
    else:
        # Accepted means: an image batch of 3-D or 4-D RGB, real numbers in range.
        assert X.ndim in (3, 4) and X.size > 0 and X.dtype.kind in "uif"
        assert X.ndim == 3 or X.shape[-1] == 3
        if X.dtype != np.uint8:
            upper = 1 if X.dtype.kind == "f" else 255
            assert np.all(np.isfinite(X)) and X.min() >= 0 and X.max() <= upper
        tensor = to_unit_tensor(X, torch.device("cpu"))
        assert tensor.shape == (X.shape[0], 3, X.shape[1], X.shape[2])
        assert tensor.dtype == torch.float32
        assert bool(((tensor >= 0) & (tensor <= 1)).all())
    np.testing.assert_array_equal(X, before)


@SETTINGS
@given(st.one_of(any_array(), st.lists(any_array(), max_size=4)))
def test_input_container_check_raises_only_clear_errors(X):
    before = copy.deepcopy(X)
    try:
        check_input_container(X)
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith(("X ", "Complex"))
    if isinstance(X, list):
        for a, b in zip(X, before, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_array_equal(X, before)


@pytest.fixture(scope="module")
def feature_detector():
    X = np.random.default_rng(0).normal(size=(30, 4))
    return MeanShiftedContrastiveDetector(random_state=0).fit(X)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(X=st.one_of(any_array(), st.lists(any_array(), max_size=3)))
def test_feature_detector_scoring_gives_scores_or_a_clear_error(feature_detector, X):
    before = copy.deepcopy(X)
    try:
        scores = feature_detector.score_samples(X)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        # It names the input and what is wrong with it, never a numpy internal.
        assert re.search(r"\bX\b|array|sample|feature", message), message
        assert re.search(r"shape|dtype|dimension|sample|feature|numeric|NaN|infinity|"
                         r"convert|real|empty", message, re.IGNORECASE), message
        assert "inhomogeneous" not in message, message
    else:
        arr = np.asarray(X)
        assert scores.shape == (arr.shape[0],) and scores.dtype == np.float64
        assert np.all(np.isfinite(scores))
    if isinstance(X, np.ndarray):
        np.testing.assert_array_equal(X, before)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 3),
    gray=st.booleans(),
    dtype=st.sampled_from([np.uint8, np.int32, np.float32, np.float64]),
    scale=st.sampled_from([1.0, 255.0, 256.0]),
)
def test_image_detector_scoring_on_random_valid_and_invalid_images(
    fitted_lite0, n, gray, dtype, scale
):
    rng = np.random.default_rng(n)
    shape = (n, 8, 8) if gray else (n, 8, 8, 3)
    X = (rng.random(shape) * scale).astype(dtype)
    in_range = X.max() <= (1 if np.dtype(dtype).kind == "f" else 255)
    if in_range:  # grayscale or RGB: either is scored (as files are)
        scores = fitted_lite0.score_samples(X)
        assert scores.shape == (n,) and np.all(np.isfinite(scores))
    else:
        with pytest.raises(ValueError, match="must lie in"):
            fitted_lite0.score_samples(X)
