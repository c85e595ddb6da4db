"""Item: MVTec-AD and VisA category folders: fit on the normal training images only, never
read the masks as images, evaluate per defect type when asked.

The trees are tiny fakes made of scikit-learn digits: zeros are the good images, other
digits the defects. Every mask file is garbage bytes with a .png name, so any code path
that read a mask as an image would fail on it.
"""

import csv
import io

import numpy as np
import pytest
from conftest import FAST
from PIL import Image
from sklearn.datasets import load_digits

from skmsc import MeanShiftedContrastiveDetector
from skmsc.cli import main
from skmsc.datasets import find_defect_layout, load_defect_folder, load_mvtec, load_visa

FLAGS = ["--backbone", "efficientnet_lite0", "--epochs", "0", "--batch-size", "8",
         "--image-size", "32", "--random-state", "0", "-q"]
GARBAGE = b"not a PNG: a mask that must never be decoded as an image"


def _digits():
    X, y = load_digits(return_X_y=True)
    return (X.reshape(-1, 8, 8) * 255 / 16).round().astype(np.uint8), y


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory):
    """mvtec/bottle: train/good 30 zeros; test/good 10 zeros, test/seven and test/three
    8 each; ground_truth/<defect>/<n>_mask.png garbage; and a second category."""
    X, y = _digits()
    root = tmp_path_factory.mktemp("mvtec")
    zeros, sevens, threes = X[y == 0], X[y == 7], X[y == 3]
    bottle = root / "bottle"
    for i in range(30):
        _save(bottle / "train" / "good" / f"{i:03d}.png", zeros[i])
    for i in range(10):
        _save(bottle / "test" / "good" / f"{i:03d}.png", zeros[30 + i])
    for defect, images in (("seven", sevens), ("three", threes)):
        for i in range(8):
            _save(bottle / "test" / defect / f"{i:03d}.png", images[i])
            mask = bottle / "ground_truth" / defect / f"{i:03d}_mask.png"
            mask.parent.mkdir(parents=True, exist_ok=True)
            mask.write_bytes(GARBAGE)
    for i in range(3):  # another category, so that root is the benchmark's top folder
        _save(root / "cable" / "train" / "good" / f"{i}.png", zeros[i])
    (root / "cable" / "test" / "good").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def visa(tmp_path_factory):
    """VisA as released: candle/Data/Images/{Normal,Anomaly}, garbage masks, split_csv."""
    X, y = _digits()
    root = tmp_path_factory.mktemp("visa")
    rows = [["object", "split", "label", "image", "mask"]]
    zeros, fours = X[y == 0], X[y == 4]
    for i in range(36):
        image = f"candle/Data/Images/Normal/{i:04d}.JPG"
        _save(root / image, zeros[i])
        rows.append(["candle", "train" if i < 28 else "test", "normal", image, ""])
    for i in range(6):
        image = f"candle/Data/Images/Anomaly/{i:03d}.JPG"
        mask = f"candle/Data/Masks/Anomaly/{i:03d}.png"
        _save(root / image, fours[i])
        (root / mask).parent.mkdir(parents=True, exist_ok=True)
        (root / mask).write_bytes(GARBAGE)
        rows.append(["candle", "test", "anomaly", image, mask])
    (root / "split_csv").mkdir()
    with open(root / "split_csv" / "1cls.csv", "w", newline="") as file:
        csv.writer(file).writerows(rows)
    return root


def test_mvtec_layout_lists_train_good_for_training_and_never_the_masks(mvtec):
    bottle = mvtec / "bottle"
    assert find_defect_layout(bottle) == "mvtec" and find_defect_layout(mvtec) is None
    split = load_mvtec(bottle)
    X_train, X_test, y_test = split[:3]
    assert len(X_train) == 30 and all("/train/good/" in p for p in X_train)
    assert len(X_test) == 26 and y_test.sum() == 10
    assert sorted(set(split.defect_type)) == ["good", "seven", "three"]
    assert not any("ground_truth" in p for p in [*X_train, *X_test])
    defective = split.defect_type != "good"
    assert all(m.endswith("_mask.png") and "ground_truth" in m
               for m in split.mask_files[defective])
    assert set(split.mask_files[~defective]) == {""}
    with pytest.raises(ValueError, match=r"several categories \(bottle, cable\)"):
        load_mvtec(mvtec)


def test_visa_split_file_gives_train_and_test(visa):
    split = load_visa(visa, "candle")
    assert len(split.X_train) == 28 and len(split.X_test) == 14
    assert split.y_test.tolist() == [1] * 8 + [0] * 6
    assert set(split.defect_type) == {"good", "anomaly"}
    assert all("Masks" in m for m in split.mask_files[split.y_test == 0])
    same = load_defect_folder(visa / "candle")  # the category folder alone
    np.testing.assert_array_equal(same.X_train, split.X_train)
    (visa / "split_csv" / "1cls.csv").rename(visa / "split_csv" / "moved.csv")
    try:
        with pytest.raises(FileNotFoundError, match="split_csv/1cls.csv"):
            load_visa(visa, "candle")
    finally:
        (visa / "split_csv" / "moved.csv").rename(visa / "split_csv" / "1cls.csv")


def _table(text):
    return {row["defect"]: row for row in csv.DictReader(io.StringIO(text))}


def test_cli_fits_a_category_on_its_normal_training_images_and_evaluates(mvtec, tmp_path,
                                                                          capsys):
    model = tmp_path / "model"
    code = main([str(a) for a in ["fit", mvtec / "bottle", "-o", model, *FLAGS, "--evaluate"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "MVTec-AD category: fitting on the 30 normal images" in err
    assert "fitting on 30 images" in err
    loaded = MeanShiftedContrastiveDetector.load(model)
    assert loaded.n_samples_fit_ == len(loaded.train_features_) == 30
    # The API on the same training images gives the same model.
    api = MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(load_mvtec(mvtec / "bottle").X_train)
    np.testing.assert_array_equal(api.train_features_, loaded.train_features_)
    table = _table(out)
    assert list(table) == ["seven", "three", "all"]
    assert table["seven"]["n_defective"] == "8" and table["all"]["n_good"] == "10"
    assert all(0.5 < float(row["roc_auc"]) <= 1 for row in table.values())
    # evaluate on its own gives the same table
    code = main(["evaluate", str(model), str(mvtec / "bottle"), "-q"])
    again, err = capsys.readouterr()
    assert code == 0, err
    assert again == out
    # score on a category scores its test images (not the masks, not the training images)
    code = main(["score", str(model), str(mvtec / "bottle"), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    scored = [row[0] for row in csv.reader(io.StringIO(out))][1:]
    assert len(scored) == 26 and all("/test/" in p for p in scored)


def test_cli_fit_on_raw_visa(visa, tmp_path, capsys):
    model = tmp_path / "model"
    code = main([str(a) for a in ["fit", visa / "candle", "-o", model, *FLAGS, "--evaluate"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "VisA category: fitting on the 28 normal images" in err
    assert list(_table(out)) == ["anomaly", "all"]


def test_cli_refuses_the_benchmarks_top_folder(mvtec, tmp_path, capsys):
    code = main(["fit", str(mvtec), "-o", str(tmp_path / "m"), *FLAGS])
    err = capsys.readouterr().err
    assert code == 2 and "holds MVTec-AD/VisA categories (bottle, cable)" in err
    assert not (tmp_path / "m").exists()


def test_evaluate_needs_a_category_folder(mvtec, tmp_path, capsys):
    code = main(["fit", str(mvtec / "bottle" / "train"), "-o", str(tmp_path / "m"), *FLAGS,
                 "--evaluate"])
    err = capsys.readouterr().err
    assert code == 2 and "not an MVTec-AD or VisA category folder" in err
    assert not (tmp_path / "m").exists()  # refused before fitting
