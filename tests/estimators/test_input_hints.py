"""Item: inputs users pass by mistake get errors naming the fix: a folder (or file) path
as X points at list_image_files, NaN says the images contain NaN (not scikit-learn's
HistGradientBoosting advice), and a (path, label) DataFrame says which column to pass."""

import copy
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST

from skmsc import KNNDetector, MeanShiftedContrastiveDetector


def _detectors():
    return [MeanShiftedContrastiveDetector(**FAST, epochs=0), KNNDetector()]


@pytest.mark.parametrize("as_path", [str, Path])
@pytest.mark.parametrize("det", _detectors(), ids=lambda d: type(d).__name__)
def test_a_folder_as_x_points_at_list_image_files(det, as_path, tmp_path):
    with pytest.raises(TypeError, match=r"X is the folder .*not a batch of samples.*"
                       r"skmsc\.data\.files\.list_image_files\("):
        det.fit(as_path(tmp_path))


def test_one_file_or_a_missing_path_as_x_says_what_to_pass(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    det = MeanShiftedContrastiveDetector(**FAST, epochs=0)
    with pytest.raises(TypeError, match=r"X is the one file .*a\.png'.*pass \[.*a\.png'\]"):
        det.fit(str(image))
    with pytest.raises(TypeError, match=r"no such file or folder.*list_image_files"):
        det.fit(str(tmp_path / "missing"))


def test_a_folder_at_scoring_time_gets_the_same_hint(digits, tmp_path):
    X, _ = digits
    det = MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(X[:12])
    with pytest.raises(TypeError, match="list_image_files"):
        det.score_samples(str(tmp_path))


def test_nan_images_say_the_images_contain_nan(digits):
    X, _ = digits
    images = X[:12].copy()
    images[3, 2, 2] = np.nan
    images[5, 0, 0] = np.inf
    before = images.copy()
    det = MeanShiftedContrastiveDetector(**FAST, epochs=0)
    with pytest.raises(ValueError, match=r"The images in X contain NaN: 2 of 12 images have "
                       r"NaN or infinite pixels.*np\.nan_to_num") as caught:
        det.fit(images)
    assert "HistGradientBoosting" not in str(caught.value)
    np.testing.assert_array_equal(images, before)  # NaN == NaN for assert_array_equal
    det.fit(X[:12])
    with pytest.raises(ValueError, match=r"The images in X contain NaN") as caught:
        det.score_samples(images)
    assert "HistGradientBoosting" not in str(caught.value)


@pytest.mark.parametrize("det", _detectors(), ids=lambda d: type(d).__name__)
def test_nan_feature_vectors_say_how_to_fill_or_drop_them(det):
    X = np.random.default_rng(0).normal(size=(10, 3))
    X[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN: 1 of 10 samples.*SimpleImputer"
                       ) as caught:
        det.fit(X)
    assert "HistGradientBoosting" not in str(caught.value)
    det.fit(np.nan_to_num(X))
    with pytest.raises(ValueError, match=r"X contains NaN: 1 of 10 samples"):
        det.decision_function(X)
    X[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"X contains infinity: 1 of 10"):
        det.score_samples(X)


@pytest.mark.parametrize("det", _detectors(), ids=lambda d: type(d).__name__)
def test_a_path_and_label_dataframe_says_to_pass_the_path_column(det, image_folder):
    pd = pytest.importorskip("pandas")
    paths = image_folder.normal[:6]
    frame = pd.DataFrame({"path": paths, "label": [1, 1, 1, 0, 1, 0]})
    before = copy.deepcopy(frame)
    with pytest.raises(TypeError, match=r"DataFrame with 2 columns \('path', 'label'\).*"
                       r"pass X\['path'\]\. If 'label' holds labels.*y: X\['label'\]"):
        det.fit(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_numeric_dataframes_are_still_feature_vectors():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(10, 3)), columns=list("abc"))
    det = KNNDetector().fit(frame)
    assert list(det.feature_names_in_) == ["a", "b", "c"]
    assert det.score_samples(frame).shape == (10,)
