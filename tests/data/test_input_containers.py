"""Items: one image is never scored as many, and the containers users hold their images in.

A detector fitted on image files used to take one (32, 32, 3) image as 32 grayscale
images; pandas/polars Series and one-column DataFrames of paths, Dask arrays of paths,
torch Datasets and URLs used to end in errors about something else.
"""

import numpy as np
import pytest
from conftest import FAST

from skmsc import MeanShiftedContrastiveDetector
from skmsc.data.files import ImageFiles, is_image_collection


@pytest.fixture(scope="module")
def file_fitted(image_folder):
    return MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(image_folder.normal)


@pytest.fixture(scope="module")
def rgb_images():
    return np.random.default_rng(0).integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)


def test_one_rgb_image_is_refused_by_a_file_fitted_detector_as_by_an_array_fitted_one(
        file_fitted, rgb_images):
    array_fitted = MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(rgb_images)
    for det in (file_fitted, array_fitted):
        for method in (det.score_samples, det.predict, det.kneighbors):
            with pytest.raises(ValueError, match=r"For a single image pass X\[None\]"):
                method(rgb_images[0])
        assert det.score_samples(rgb_images[0][None]).shape == (1,)
    # A batch still scores, and the same pixels score the same as one image or in a batch.
    scores = file_fitted.score_samples(rgb_images)
    assert scores.shape == (12,)
    assert file_fitted.score_samples(rgb_images[3][None])[0] == pytest.approx(scores[3],
                                                                               abs=1e-2)


def test_one_grayscale_image_is_refused_by_a_file_fitted_detector(file_fitted, image_folder):
    image = image_folder.test_array[0]  # (8, 8)
    with pytest.raises(ValueError, match=r"one grayscale image.*X\[None\]"):
        file_fitted.score_samples(image)
    # A batch of grayscale images 8 pixels wide is a batch; 3 pixels wide is ambiguous.
    assert file_fitted.score_samples(image_folder.test_array).shape == (16,)
    narrow = np.zeros((5, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"np\.repeat\(X\[\.\.\., None\], 3, axis=-1\)"):
        file_fitted.score_samples(narrow)
    assert file_fitted.score_samples(np.repeat(narrow[..., None], 3, axis=-1)).shape == (5,)


def _containers(paths):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    da = pytest.importorskip("dask.array")
    return {
        "pandas Series": pd.Series(paths, index=np.arange(len(paths)) * 10),
        "pandas DataFrame": pd.DataFrame({"path": paths}),
        "polars Series": pl.Series("path", paths),
        "polars DataFrame": pl.DataFrame({"path": paths}),
        "Dask array": da.from_array(np.array(paths), chunks=3),
        "numpy object array": np.array(paths, dtype=object),
    }


def test_series_dataframes_and_dask_arrays_of_paths_work_like_a_list(file_fitted,
                                                                     image_folder):
    paths = image_folder.test[:7]
    expected = file_fitted.score_samples(paths)
    for name, X in _containers(paths).items():
        assert is_image_collection(X), name
        np.testing.assert_array_equal(file_fitted.score_samples(X), expected, err_msg=name)
    fitted = MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(
        _containers(image_folder.normal)["pandas DataFrame"])
    np.testing.assert_array_equal(fitted.train_features_, file_fitted.train_features_)


def test_numeric_containers_stay_arrays(file_fitted):
    pd = pytest.importorskip("pandas")
    assert not is_image_collection(pd.Series([1.0, 2.0]))
    assert not is_image_collection(pd.DataFrame({"a": ["x.png"], "b": ["y.png"]}))
    assert not is_image_collection(np.zeros((2, 8, 8)))


def test_urls_are_not_fetched(file_fitted, image_folder):
    urls = ["https://example.com/cat.png", "s3://bucket/dog.jpg"]
    for X in (urls, [image_folder.test[0], urls[0]]):
        with pytest.raises(ValueError, match="URLs are not fetched: item .* is 'https://"):
            file_fitted.score_samples(X)
    with pytest.raises(ValueError, match=r"URLs are not fetched.*\(2 URLs in all\).*download"):
        ImageFiles(urls)


def test_a_torch_dataset_error_says_how_to_pass_its_images(image_folder, tmp_path):
    import shutil

    import torch
    from torchvision.datasets import ImageFolder

    (tmp_path / "normal").mkdir()
    for path in image_folder.normal:
        shutil.copy(path, tmp_path / "normal")
    dataset = ImageFolder(tmp_path)
    det = MeanShiftedContrastiveDetector(**FAST, epochs=0)
    with pytest.raises(TypeError, match=r"torch Dataset \(ImageFolder\).*dataset\.samples\]"):
        det.fit(dataset)
    # What the message says to do works.
    det.fit([path for path, _ in dataset.samples])
    assert len(det.train_features_) == 24

    class Tensors(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(3, 8, 8), 0

    with pytest.raises(TypeError, match=r"torch Dataset \(Tensors\).*np\.stack"):
        det.score_samples(Tensors())
    with pytest.raises(TypeError, match="torch DataLoader"):
        det.score_samples(torch.utils.data.DataLoader(Tensors()))
