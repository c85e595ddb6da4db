"""Industrial defect benchmarks laid out on disk: MVTec-AD and VisA (re-exported by
:mod:`skmsc.datasets`).

Two layouts are recognised, for one product category at a time:

- **MVTec-AD style** (MVTec-AD, and VisA after its split script, ``visa_pytorch``)::

      bottle/train/good/*.png            normal training images
      bottle/test/good/*.png             normal test images
      bottle/test/<defect>/*.png         anomalous test images, one folder per defect type
      bottle/ground_truth/<defect>/*.png pixel masks of the defects (never images to fit on)

- **VisA as released**: ``<root>/<category>/Data/Images/{Normal,Anomaly}/*.JPG``, masks in
  ``Data/Masks/Anomaly``, and the official split in ``<root>/split_csv/1cls.csv``.

Training uses the normal training images only; mask folders are never read as images.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data.files import IMAGE_EXTENSIONS

__all__ = ["DefectSplit", "find_defect_layout", "load_defect_folder", "load_mvtec", "load_visa"]

# Folder of the pixel masks in the MVTec-AD layout.
MASK_FOLDER = "ground_truth"
# Defect-type name of the normal test images.
GOOD = "good"
# The split file VisA ships (one-class protocol), relative to the VisA root.
VISA_SPLIT = Path("split_csv") / "1cls.csv"


class DefectSplit(NamedTuple):
    """One category of a defect benchmark; unpacks as ``X_train, X_test, y_test``.

    ``X_train`` holds the paths of the normal training images only; ``X_test`` the test
    images, with ``y_test`` 1 for a normal (good) image and 0 for a defective one, and
    ``defect_type`` naming each (``"good"`` for normal images). ``mask_files`` is each
    test image's ground-truth mask (``""`` where there is none).

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.datasets import DefectSplit
    >>> split = DefectSplit(np.array(["t/good/0.png"]), np.array(["s/crack/1.png"]),
    ...                     np.array([0]), np.array(["crack"]), np.array(["m/1_mask.png"]),
    ...                     "bottle", "mvtec")
    >>> X_train, X_test, y_test = split[:3]
    >>> split.category, split.defect_type.tolist()
    ('bottle', ['crack'])
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    defect_type: np.ndarray
    mask_files: np.ndarray
    category: str
    layout: str


def _images(folder: Path) -> list[str]:
    """Image files under ``folder`` (recursively), sorted; hidden files skipped."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if p.is_file()
             and p.suffix.lower() in IMAGE_EXTENSIONS
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return [str(p) for p in sorted(found, key=lambda p: p.relative_to(folder).as_posix())]


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _visa_split_file(category_folder: Path) -> Path:
    return category_folder.parent / VISA_SPLIT


def find_defect_layout(folder) -> str | None:
    """``"mvtec"`` or ``"visa"`` if ``folder`` is one category of such a benchmark, else None.

    ``"mvtec"``: ``train/good/`` and ``test/`` sub-folders (MVTec-AD, prepared VisA).
    ``"visa"``: ``Data/Images/Normal/`` as VisA ships it.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    layout : {"mvtec", "visa"} or None

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skmsc.datasets import find_defect_layout
    >>> root = Path(tempfile.mkdtemp()) / "bottle"
    >>> for sub in ("train/good", "test/good", "test/crack", "ground_truth/crack"):
    ...     (root / sub).mkdir(parents=True)
    >>> find_defect_layout(root), find_defect_layout(root / "train")
    ('mvtec', None)
    """
    folder = Path(folder)
    if (folder / "train" / GOOD).is_dir() and (folder / "test").is_dir():
        return "mvtec"
    if (folder / "Data" / "Images" / "Normal").is_dir():
        return "visa"
    return None


def _check_category(root: Path, what: str) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder {root} does not exist.")
    inner = [p.name for p in _subfolders(root) if find_defect_layout(p)]
    if inner:
        shown = ", ".join(inner[:4]) + (", ..." if len(inner) > 4 else "")
        raise ValueError(
            f"{root} holds several categories ({shown}): pass one category folder, e.g. "
            f"{root / inner[0]}."
        )


def load_mvtec(root) -> DefectSplit:
    """One category of MVTec-AD (or any folder in its layout, e.g. prepared VisA).

    Parameters
    ----------
    root : str or os.PathLike
        The category folder, holding ``train/good/``, ``test/<defect>/`` and optionally
        ``ground_truth/<defect>/`` (masks named ``<image>_mask.png`` or ``<image>.png``).

    Returns
    -------
    split : DefectSplit
        Paths of ``train/good`` images (``X_train``) and of every ``test/`` image, labels
        (1 = good), defect types and mask paths. Nothing in ``ground_truth/`` is listed as
        an image.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder or has no ``train/good`` images.
    ValueError
        If ``root`` is the benchmark's top folder (several categories).

    Examples
    --------
    >>> from skmsc.datasets import load_mvtec
    >>> split = load_mvtec("mvtec_anomaly_detection/bottle")  # doctest: +SKIP
    >>> len(split.X_train), sorted(set(split.defect_type))  # doctest: +SKIP
    (209, ['broken_large', 'broken_small', 'contamination', 'good'])
    """
    root = Path(root).expanduser()
    _check_category(root, "MVTec-AD category")
    if find_defect_layout(root) != "mvtec":
        raise FileNotFoundError(
            f"{root} is not in the MVTec-AD layout: expected {root / 'train' / GOOD}/ (normal "
            f"training images) and {root / 'test'}/<defect>/ (test images)."
        )
    train = _images(root / "train" / GOOD)
    if not train:
        raise FileNotFoundError(f"no images in {root / 'train' / GOOD}")
    test, defects, masks = [], [], []
    for folder in _subfolders(root / "test"):
        for path in _images(folder):
            test.append(path)
            defects.append(folder.name)
            masks.append("" if folder.name == GOOD else _mvtec_mask(root, folder.name, path))
    return DefectSplit(
        X_train=np.array(train, dtype=str), X_test=np.array(test, dtype=str),
        y_test=(np.array(defects, dtype=str) == GOOD).astype(np.int64),
        defect_type=np.array(defects, dtype=str), mask_files=np.array(masks, dtype=str),
        category=root.name, layout="mvtec",
    )


def _mvtec_mask(root: Path, defect: str, image: str) -> str:
    stem = Path(image).stem
    for name in (f"{stem}_mask.png", f"{stem}.png"):
        mask = root / MASK_FOLDER / defect / name
        if mask.is_file():
            return str(mask)
    return ""


def load_visa(root, category=None) -> DefectSplit:
    """One category of VisA as released, split by its ``split_csv/1cls.csv``.

    Parameters
    ----------
    root : str or os.PathLike
        The VisA folder (holding the category folders and ``split_csv/``), or one
        category folder inside it (then ``category`` is its name).
    category : str, default=None
        The category, e.g. ``"candle"``; required when ``root`` is the VisA folder.

    Returns
    -------
    split : DefectSplit
        The rows of ``1cls.csv`` for the category: ``split == "train"`` (all normal) as
        ``X_train``, ``split == "test"`` as ``X_test`` with ``y_test`` 1 for ``normal``;
        ``defect_type`` is ``"good"`` or ``"anomaly"`` (VisA does not name defect types).

    Raises
    ------
    FileNotFoundError
        If the split file, the category or an image it lists is missing.
    ValueError
        If the split file is malformed or lists an anomaly for training.

    Examples
    --------
    >>> from skmsc.datasets import load_visa
    >>> split = load_visa("VisA_20220922", "candle")  # doctest: +SKIP
    >>> len(split.X_train), int(split.y_test.sum()), len(split.y_test)  # doctest: +SKIP
    (900, 100, 200)
    """
    root = Path(root).expanduser()
    if category is None:
        if find_defect_layout(root) != "visa":
            raise ValueError(f"{root} is not a VisA category folder: pass the VisA folder "
                             "and category=<name>, e.g. load_visa('VisA', 'candle').")
        root, category = root.parent, root.name
    split_file = root / VISA_SPLIT
    if not split_file.is_file():
        raise FileNotFoundError(
            f"VisA split file {split_file} not found: it ships with VisA (split_csv/1cls.csv "
            "in the VisA folder). Without it the normal images cannot be told apart into "
            "training and test images."
        )
    if not (root / category).is_dir():
        raise FileNotFoundError(f"VisA category folder {root / category} not found.")
    train, test, labels, masks = [], [], [], []
    with open(split_file, newline="") as file:
        rows = list(csv.DictReader(file))
    needed = {"object", "split", "label", "image", "mask"}
    if not rows or not needed <= set(rows[0]):
        raise ValueError(f"{split_file} must have the columns {sorted(needed)}.")
    for number, row in enumerate(rows, start=2):
        if row["object"] != category:
            continue
        image = root / row["image"]
        if not image.is_file():
            raise FileNotFoundError(f"{split_file}, line {number}: image {image} not found")
        if row["label"] not in ("normal", "anomaly") or row["split"] not in ("train", "test"):
            raise ValueError(f"{split_file}, line {number}: label {row['label']!r} / split "
                             f"{row['split']!r} is not normal/anomaly and train/test")
        if row["split"] == "train":
            if row["label"] != "normal":
                raise ValueError(f"{split_file}, line {number}: an anomaly in the training "
                                 "split; skmsc trains on normal images only")
            train.append(str(image))
            continue
        test.append(str(image))
        labels.append(row["label"])
        masks.append(str(root / row["mask"]) if row["mask"] else "")
    if not train:
        raise FileNotFoundError(f"{split_file} lists no training images for {category!r}.")
    y_test = (np.array(labels, dtype=str) == "normal").astype(np.int64)
    return DefectSplit(
        X_train=np.array(train, dtype=str), X_test=np.array(test, dtype=str), y_test=y_test,
        defect_type=np.where(y_test == 1, GOOD, "anomaly").astype(str),
        mask_files=np.array(masks, dtype=str), category=category, layout="visa",
    )


def load_defect_folder(folder) -> DefectSplit:
    """:func:`load_mvtec` or :func:`load_visa`, whichever layout ``folder`` has.

    Parameters
    ----------
    folder : str or os.PathLike
        One category folder (see :func:`find_defect_layout`).

    Returns
    -------
    split : DefectSplit

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from skmsc.datasets import load_defect_folder
    >>> root = Path(tempfile.mkdtemp()) / "bottle"
    >>> for name in ("train/good/000.png", "test/good/000.png", "test/crack/000.png",
    ...              "ground_truth/crack/000_mask.png"):
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     Image.new("RGB", (8, 8)).save(root / name)
    >>> split = load_defect_folder(root)
    >>> len(split.X_train), split.y_test.tolist(), split.defect_type.tolist()
    (1, [0, 1], ['crack', 'good'])
    >>> Path(split.mask_files[0]).name
    '000_mask.png'
    """
    layout = find_defect_layout(folder)
    if layout == "mvtec":
        return load_mvtec(folder)
    if layout == "visa":
        return load_visa(folder)
    raise ValueError(f"{folder} is not an MVTec-AD or VisA category folder.")
