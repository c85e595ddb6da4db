"""Inputs that numpy or torch would take silently, or fail on deep inside: our own errors.

Issue #16, item 8 (masked arrays, datetime64, float128, bools for integer parameters) and
item 13 (torch bfloat16 tensors, 1-D object arrays of images, paths as bytes, unusable
devices, weights="" and weights=a folder).
"""

import os
import threading

import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.utils._param_validation import InvalidParameterError

from skmsc import KNNDetector, MeanShiftedContrastiveDetector
from skmsc.data.files import ImageFiles

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(30, 4))
IMAGES = RNG.integers(0, 256, size=(6, 16, 16), dtype=np.uint8)


def test_masked_values_are_refused_not_ignored():
    """The issue: the mask was ignored, and a masked 1e30 ended up in center_."""
    X = np.ma.masked_array(FEATURES.copy(), mask=np.zeros_like(FEATURES, bool))
    X[3, 1] = np.ma.masked
    X.data[3, 1] = 1e30
    for det in (MeanShiftedContrastiveDetector(), KNNDetector()):
        with pytest.raises(TypeError, match="masked array with 1 masked values"):
            det.fit(X)
    unmasked = np.ma.masked_array(FEATURES, mask=False)  # nothing hidden: just the data
    np.testing.assert_array_equal(KNNDetector().fit(unmasked).offset_,
                                  KNNDetector().fit(FEATURES).offset_)
    fitted = KNNDetector().fit(FEATURES)
    with pytest.raises(TypeError, match="masked"):
        fitted.score_samples(X)


@pytest.mark.parametrize("dtype", ["datetime64[s]", "timedelta64[ms]"])
def test_dates_and_durations_are_not_features(dtype):
    X = np.arange(40).reshape(10, 4).astype(dtype)
    for det in (MeanShiftedContrastiveDetector(), KNNDetector()):
        with pytest.raises(TypeError, match="not numeric"):
            det.fit(X)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="no extended precision")
@pytest.mark.parametrize("X", [FEATURES, IMAGES / 255], ids=["features", "images"])
def test_extended_precision_is_refused(X):
    for det in (MeanShiftedContrastiveDetector(**FAST, epochs=0), KNNDetector()):
        if X.ndim > 2 and isinstance(det, KNNDetector):
            continue
        with pytest.raises(TypeError, match=r"extended precision.*astype\(np.float64\)"):
            det.fit(X.astype(np.longdouble))


@pytest.mark.parametrize("param", ["n_neighbors", "frozen_stages", "epochs", "batch_size",
                                   "image_size", "n_iter_no_change", "learning_rate",
                                   "temperature", "weight_decay", "validation_fraction"])
def test_bools_are_not_numbers_for_parameters(param):
    det = MeanShiftedContrastiveDetector(**{param: True})
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter.*not a bool"):
        det.fit(FEATURES)
    with pytest.raises(InvalidParameterError, match="'n_neighbors' parameter"):
        KNNDetector(n_neighbors=False).fit(FEATURES)


def test_torch_tensors_numpy_cannot_hold_get_our_message():
    bf16 = torch.from_numpy(FEATURES).to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"bfloat16.*X.float\(\)"):
        MeanShiftedContrastiveDetector().fit(bf16)
    grad = torch.from_numpy(FEATURES).requires_grad_(True)
    with pytest.raises(TypeError, match=r"requires grad.*X.detach\(\)"):
        KNNDetector().fit(grad)
    # Plain CPU tensors are fine, and give the array's result.
    np.testing.assert_array_equal(KNNDetector().fit(torch.from_numpy(FEATURES)).offset_,
                                  KNNDetector().fit(FEATURES).offset_)


def test_a_1d_object_array_of_images_gets_our_message():
    same = np.empty(len(IMAGES), dtype=object)
    same[:] = list(IMAGES)
    with pytest.raises(TypeError, match=r"1-D object array of 6 items.*np.stack"):
        MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(same)
    mixed = np.empty(2, dtype=object)
    mixed[:] = [IMAGES[0], IMAGES[1, :8]]
    with pytest.raises(ValueError, match="samples of different shapes"):
        MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(mixed)


def test_paths_as_bytes_get_our_message(image_folder):
    paths = [os.fsencode(p) for p in image_folder.normal[:4]]
    with pytest.raises(TypeError, match=r"os.fsdecode"):
        MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(paths)
    with pytest.raises(TypeError, match=r"item 0 is bytes.*os.fsdecode"):
        ImageFiles(paths)
    from skmsc.data.files import decode_image

    with pytest.raises(TypeError, match="os.fsdecode"):
        decode_image(paths[0])


@pytest.mark.parametrize("device", ["meta", "banana", "xla", "cuda:x"])
def test_devices_skmsc_cannot_run_on_are_refused(device):
    det = MeanShiftedContrastiveDetector(**FAST, epochs=0, device=device)
    with pytest.raises(ValueError, match=f"device={device!r} is not"):
        det.fit(IMAGES)


def test_weight_paths_that_are_empty_folders_or_fifos(tmp_path):
    for weights, match in [("", "empty path"), (str(tmp_path), "is a folder"),
                           (tmp_path / "missing.pth", "does not exist")]:
        det = MeanShiftedContrastiveDetector(**FAST, epochs=0, weights=weights)
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            det.fit(IMAGES)
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    outcome = []

    def fit():
        try:
            MeanShiftedContrastiveDetector(**FAST, epochs=0, weights=fifo).fit(IMAGES)
        except Exception as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # release the reader the unfixed code leaves waiting
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("blocked on a FIFO given as weights")
    assert isinstance(outcome[0], ValueError) and "FIFO" in str(outcome[0])
