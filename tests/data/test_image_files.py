"""Fitting and scoring from image files and PIL images (skmsc.data.files)."""

import os
import threading
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from conftest import FAST
from PIL import Image

from skmsc import MeanShiftedContrastiveDetector
from skmsc.data._batches import BatchReader, FileBatches
from skmsc.data.files import (
    ImageFiles,
    UnreadableImageError,
    decode_image,
    find_unreadable,
    is_image_collection,
    list_image_files,
)
from skmsc.datasets import read_images
from skmsc.nn._preprocess import to_unit_tensor, training_transform
from skmsc.nn.backbones import BACKBONES

FAST = dict(FAST, epochs=1)
# Same-size images give the same arithmetic as files or as an array on the CPU; the
# tolerance only allows for a different summation order in a future torch.
SAME = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def file_fit(image_folder):
    return MeanShiftedContrastiveDetector(**FAST).fit(image_folder.normal)


@pytest.fixture(scope="module")
def array_fit(image_folder):
    return MeanShiftedContrastiveDetector(**FAST).fit(image_folder.normal_array)


def test_fit_on_files_equals_fit_on_the_same_pixels_as_an_array(file_fit, array_fit):
    assert file_fit.loss_curve_ == pytest.approx(array_fit.loss_curve_, rel=1e-6)
    np.testing.assert_allclose(file_fit.center_, array_fit.center_, **SAME)
    np.testing.assert_allclose(file_fit.train_features_, array_fit.train_features_, **SAME)
    assert file_fit.offset_ == pytest.approx(array_fit.offset_, rel=1e-6)
    assert file_fit.input_shape_ is None and not hasattr(file_fit, "n_features_in_")
    assert array_fit.input_shape_ == (8, 8) and array_fit.n_features_in_ == 8


def test_png_files_score_like_the_array(file_fit, array_fit, image_folder):
    from_array = array_fit.score_samples(image_folder.test_array)
    for det in (file_fit, array_fit):
        np.testing.assert_allclose(det.score_samples(image_folder.test), from_array, **SAME)
    np.testing.assert_allclose(
        file_fit.decision_function(image_folder.test), array_fit.decision_function(
            image_folder.test_array), **SAME
    )
    np.testing.assert_array_equal(
        file_fit.predict(image_folder.test), array_fit.predict(image_folder.test_array)
    )
    # The detector works: the normal class (zeros) scores higher than the rest.
    zeros = image_folder.test_labels == 0
    assert from_array[zeros].mean() > from_array[~zeros].mean()


def test_path_forms_and_pil_images_give_the_same_scores(file_fit, image_folder):
    paths = image_folder.test
    expected = file_fit.score_samples(paths)
    pil_images = [Image.open(p) for p in paths]
    for X in (
        tuple(paths),
        [Path(p) for p in paths],
        np.array(paths),
        np.array(paths, dtype=object),
        pil_images,
        ImageFiles(paths, n_workers=0),
        ImageFiles(paths, n_workers=3),
    ):
        np.testing.assert_array_equal(file_fit.score_samples(X), expected)


def test_jpeg_files_score_like_their_decoded_pixels(file_fit, image_folder):
    decoded = read_images(image_folder.jpeg)
    np.testing.assert_allclose(
        file_fit.score_samples(image_folder.jpeg), file_fit.score_samples(decoded), **SAME
    )


def test_mixed_sizes_and_modes_each_score_as_its_own_image(file_fit, image_folder):
    files = list(image_folder.other.values()) + image_folder.test[:3]
    scores = file_fit.score_samples(files)
    assert scores.shape == (len(files),) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    # A file's score depends on its pixels only, not on its batch mates or position.
    one_by_one = [file_fit.score_samples(decode_image(f)[None])[0] for f in files]
    np.testing.assert_allclose(scores, one_by_one, **SAME)
    np.testing.assert_allclose(file_fit.score_samples(files[::-1])[::-1], scores, **SAME)
    # Photos are not handwritten zeros.
    photos = scores[: len(image_folder.other)]
    assert photos.max() < file_fit.score_samples(image_folder.normal).min()


def test_modes_and_exif_are_honoured(image_folder):
    other = image_folder.other
    gray = decode_image(other["camera_gray.png"])
    assert gray.shape == (128, 128, 3) and (gray[..., 0] == gray[..., 2]).all()
    assert decode_image(other["logo_rgba.png"]).shape == (100, 100, 3)
    assert decode_image(other["coffee_palette.png"]).shape == (67, 100, 3)
    stored = Image.open(other["rotated.jpg"]).size  # (width, height) before rotation
    files = ImageFiles([other["rotated.jpg"]])
    assert files.image_size(0) == stored  # (height, width) displayed = swapped
    assert decode_image(other["rotated.jpg"]).shape[:2] == stored


def test_fit_on_mixed_sizes(image_folder):
    files = image_folder.normal[:10] + list(image_folder.other.values())
    det = MeanShiftedContrastiveDetector(**FAST).fit(files)
    assert det.train_features_.shape == (len(files), 1280)
    assert np.isfinite(det.loss_curve_).all() and np.isfinite(det.train_scores_).all()
    # Fitted on files: image arrays of any size are scored.
    assert det.score_samples(np.zeros((2, 40, 50, 3), dtype=np.uint8)).shape == (2,)


def test_training_batches_of_mixed_sizes_are_the_central_square(image_folder):
    spec = BACKBONES["efficientnet_lite0"]
    files = ImageFiles([image_folder.other["chelsea.png"], image_folder.other["coffee.png"]])
    transform = training_transform(spec, 32, torch.device("cpu"))
    with FileBatches(files).reader(transform) as reader:
        batch = reader.read([0, 1])
    side = round(32 / spec.crop_fraction)
    assert batch.shape == (2, 3, side, side)
    assert 0 <= batch.min() and batch.max() <= 1
    # Same-size images are used as decoded: the array path's tensor.
    same = ImageFiles(image_folder.test[:2])
    with FileBatches(same).reader(transform) as reader:
        batch = reader.read([0, 1])
    expected = to_unit_tensor(image_folder.test_array[:2], torch.device("cpu"))
    torch.testing.assert_close(batch, expected, rtol=0, atol=0)


@pytest.mark.parametrize("bad", ["garbage", "truncated"])
def test_an_unreadable_file_raises_an_error_naming_it(file_fit, image_folder, bad):
    path = getattr(image_folder, bad)
    files = image_folder.test[:5] + [path] + image_folder.test[5:9]
    for method in ("score_samples", "decision_function", "predict"):
        with pytest.raises(UnreadableImageError, match="cannot read image") as info:
            getattr(file_fit, method)(files)
        assert path in str(info.value)
    det = MeanShiftedContrastiveDetector(**FAST)
    with pytest.raises(ValueError, match=os.path.basename(path)):
        det.fit(image_folder.normal[:6] + [path])
    assert not hasattr(det, "offset_")


def test_missing_file_raises_file_not_found(file_fit, image_folder):
    missing = str(image_folder.root / "nowhere.png")
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        file_fit.score_samples([missing])


def test_find_unreadable_lists_exactly_the_bad_files(image_folder):
    files = image_folder.test[:4] + [image_folder.garbage, image_folder.truncated]
    failures = find_unreadable(files, n_workers=2)
    assert [name for name, _ in failures] == [image_folder.garbage, image_folder.truncated]
    assert all(name in reason for name, reason in failures)
    assert find_unreadable(image_folder.test) == []


def test_decoding_stays_one_batch_ahead(image_folder):
    files = ImageFiles(image_folder.test, n_workers=2)
    started, lock = [], threading.Lock()

    def per_image(index):
        with lock:
            started.append(index)
        return index

    batches = [np.arange(s, s + 4) for s in range(0, 16, 4)]
    for k, batch in enumerate(files._map_batches(batches, per_image)):
        assert batch == list(batches[k])
        with lock:  # bounded memory: at most this batch and the next one decoded
            assert len(started) <= 4 * (k + 2)


def test_batch_reader_decodes_the_next_batch_ahead_and_drops_a_wrong_guess():
    calls, lock = [], threading.Lock()

    def one(index):
        with lock:
            calls.append(index)
        return index

    with BatchReader(one, list, workers=2) as reader:
        assert reader.read([0, 1], ahead=[2, 3]) == [0, 1]
        assert reader.read([2, 3], ahead=[4, 5]) == [2, 3]  # the prefetched batch
        assert reader.read([4], ahead=[5]) == [4]  # smaller batch (after OOM): re-read
        assert reader.read([5]) == [5]
    assert sorted(calls[:4]) == [0, 1, 2, 3] and calls.count(2) == 1
    with BatchReader(one, list, workers=0) as reader:  # no threads: no look-ahead
        assert reader.read([7, 8], ahead=[9]) == [7, 8]
    assert 9 not in calls


def test_collection_detection():
    assert is_image_collection(["a.png"]) and is_image_collection((Path("a.png"),))
    assert is_image_collection(np.array(["a.png", "b.png"]))
    assert is_image_collection([Image.new("RGB", (4, 4))])
    assert not is_image_collection([])
    assert not is_image_collection(np.zeros((3, 4)))
    assert not is_image_collection([[1, 2], [3, 4]])
    assert not is_image_collection(["a.png", 3])
    with pytest.raises(TypeError, match="item 1"):
        ImageFiles(["a.png", 3])
    with pytest.raises(ValueError, match="n_workers"):
        ImageFiles(["a.png"], n_workers=-1)


def test_feature_vector_model_refuses_files(image_folder):
    det = MeanShiftedContrastiveDetector().fit(np.random.default_rng(0).normal(size=(10, 4)))
    with pytest.raises(ValueError, match="feature vectors"):
        det.score_samples(image_folder.test[:2])


def test_refit_on_files_forgets_the_array_shape(image_folder, array_fit):
    det = joblib.load(_dump(array_fit, image_folder.root / "array_model.joblib"))
    det.fit(image_folder.normal[:8])
    assert det.input_shape_ is None and not hasattr(det, "n_features_in_")
    assert det.score_samples(np.zeros((1, 20, 30), dtype=np.uint8)).shape == (1,)


def test_file_fitted_model_pickles_and_saves(file_fit, image_folder):
    expected = file_fit.score_samples(image_folder.test)
    loaded = joblib.load(_dump(file_fit, image_folder.root / "file_model.joblib"))
    np.testing.assert_array_equal(loaded.score_samples(image_folder.test), expected)
    saved = MeanShiftedContrastiveDetector.load(file_fit.save(image_folder.root / "saved"))
    assert saved.input_shape_ is None and not hasattr(saved, "n_features_in_")
    np.testing.assert_array_equal(saved.score_samples(image_folder.test), expected)


def test_list_image_files(image_folder):
    normal = image_folder.root / "normal"
    assert list_image_files(normal) == image_folder.normal
    top_level = list_image_files(normal, recursive=False)
    assert top_level == [p for p in image_folder.normal if "more" not in p]
    other = image_folder.root / "other"
    assert all(p.endswith(".jpg") for p in list_image_files(other, extensions=["JPG"]))
    assert len(list_image_files(other, extensions=[".jpg", "png"])) == len(
        list_image_files(other)
    )
    with pytest.raises(NotADirectoryError):
        list_image_files(image_folder.garbage)


def _dump(model, path):
    joblib.dump(model, path)
    return path


def test_array_fitted_detector_scores_arrays_of_any_size_as_files(array_fit, image_folder):
    """Issue #25 item 3: an array of another size or channel count is resized as a file is."""
    files = [image_folder.other["coffee.png"], image_folder.other["camera_gray.png"],
             image_folder.jpeg[0]]
    for path in files:
        pixels = decode_image(path)  # (H, W, 3) uint8, sizes unlike the 8x8 fit
        as_file = array_fit.score_samples([path])
        np.testing.assert_allclose(array_fit.score_samples(pixels[None]), as_file, **SAME)
        np.testing.assert_allclose(array_fit.decision_function(pixels[None]),
                                   array_fit.decision_function([path]), **SAME)
    # Grayscale images of another size, as an (n, H, W) array: as their RGB copies.
    gray = decode_image(image_folder.other["camera_gray.png"])[..., 0]
    np.testing.assert_allclose(
        array_fit.score_samples(np.stack([gray, gray])),
        array_fit.score_samples(np.repeat(gray[None, ..., None], 3, axis=-1).repeat(2, 0)),
        **SAME)
    # The single-image rule stays: one (H, W, 3) image needs X[None].
    with pytest.raises(ValueError, match=r"X\[None\]"):
        array_fit.score_samples(decode_image(files[0]))
    with pytest.raises(ValueError, match=r"X\[None\]"):
        array_fit.score_samples(gray)
