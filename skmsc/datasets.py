"""Local-file loaders for the image data sets used with :mod:`skmsc`.

Nothing here downloads anything: every loader reads files that are already on disk and raises a
:class:`FileNotFoundError` naming the expected path, and how to obtain the data, when they are
missing.  Pixel loaders return ``uint8`` images shaped ``(n, H, W)`` (grayscale) or
``(n, H, W, 3)`` (RGB) and ``int64`` labels shaped ``(n,)``.

The one-class protocol of Reiss & Hoshen (2023) is provided by :func:`one_class_split`: train on
the training images of one "normal" class, test on the whole test set with label 1 for the normal
class and 0 for every other class.
"""

from __future__ import annotations

import codecs
import gzip
import os
import pickle
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.utils import check_random_state

# Industrial defect benchmarks (MVTec-AD, VisA) live in their own module.
from ._defect_folders import (
    DefectSplit,
    find_defect_layout,
    load_defect_folder,
    load_mvtec,
    load_visa,
)

# Decoding and the accepted file types belong to the data layer; the loaders use them.
from .data.files import IMAGE_EXTENSIONS, decode_image

__all__ = [
    "CIFAR10_CLASSES",
    "DefectSplit",
    "FASHION_MNIST_CLASSES",
    "ImageDataset",
    "ImageFileDataset",
    "OneClassSplit",
    "UnsafePickleError",
    "ELPVSplit",
    "find_defect_layout",
    "load_defect_folder",
    "load_elpv",
    "load_cifar10",
    "load_cifar100",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mvtec",
    "load_visa",
    "one_class_split",
    "read_images",
    "subsample",
]

#: Fashion-MNIST class names, in label order (label 0 is "T-shirt/top").
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
#: CIFAR-10 class names, in label order (label 0 is "airplane").
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "SKMSC_FASHION_MNIST_DIR"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------
def _as_labels(labels, n, class_names):
    labels = np.asarray(labels)
    if labels.shape != (n,) or (n and labels.dtype.kind not in "iu"):
        raise ValueError(
            f"labels must be integers of shape ({n},), got {labels.dtype} {labels.shape}"
        )
    if n and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"labels must lie in [0, {len(class_names)}), the class_names indices")
    return labels.astype(np.int64, copy=False)


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Decoded images with integer labels.

    Parameters
    ----------
    images : ndarray of uint8, shape (n, H, W) or (n, H, W, 3)
        Grayscale or RGB images.
    labels : ndarray of int64, shape (n,)
        Class index of each image, an index into ``class_names``.
    class_names : tuple of str
        Human-readable name of each class.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.datasets import ImageDataset
    >>> ds = ImageDataset(np.zeros((3, 8, 8), np.uint8), [0, 1, 1], ["cat", "dog"])
    >>> len(ds), ds.labels.tolist(), ds.class_names
    (3, [0, 1, 1], ('cat', 'dog'))
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "images", np.asarray(self.images))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(
            self, "labels", _as_labels(self.labels, len(self.images), self.class_names)
        )

    def __len__(self):
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class ImageFileDataset:
    """Image file paths with integer labels (pixels are decoded later by :func:`read_images`).

    Parameters
    ----------
    paths : ndarray of str, shape (n,)
        Image file paths.
    labels : ndarray of int64, shape (n,)
        Class index of each file, an index into ``class_names``.
    class_names : tuple of str
        Name of each class (its folder name).

    Examples
    --------
    >>> from skmsc.datasets import ImageFileDataset
    >>> files = ImageFileDataset(["good/1.png", "bad/2.png"], [0, 1], ["good", "bad"])
    >>> files.paths.tolist(), files.labels.tolist()
    (['good/1.png', 'bad/2.png'], [0, 1])
    """

    paths: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "paths", np.asarray(self.paths, dtype=str))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(
            self, "labels", _as_labels(self.labels, len(self.paths), self.class_names)
        )

    def __len__(self):
        return len(self.labels)


def _samples(dataset):
    return dataset.paths if isinstance(dataset, ImageFileDataset) else dataset.images


def _with_indices(dataset, idx):
    if isinstance(dataset, ImageFileDataset):
        return replace(dataset, paths=dataset.paths[idx], labels=dataset.labels[idx])
    return replace(dataset, images=dataset.images[idx], labels=dataset.labels[idx])


def _check_split(split):
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# --------------------------------------------------------------------------------------------
def _read_idx(path, magic, ndim):
    """Read an IDX ``ubyte`` file (optionally gzip-compressed) into a uint8 array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"cannot read IDX file {path}: {exc}") from exc
    header_len = 4 * (1 + ndim)
    if len(raw) < header_len:
        raise ValueError(f"IDX file {path} is truncated: {len(raw)} bytes, no complete header")
    header = np.frombuffer(raw, dtype=">i4", count=1 + ndim)
    if header[0] != magic:
        raise ValueError(f"IDX file {path} has magic number {header[0]}, expected {magic}")
    shape = tuple(int(d) for d in header[1:])
    expected = header_len + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(
            f"IDX file {path} is corrupt or truncated: {len(raw)} bytes, expected {expected} "
            f"for shape {shape}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def load_fashion_mnist(split="train", root=None):
    """Load Fashion-MNIST from its IDX files.

    Parameters
    ----------
    split : {"train", "test"}, default="train"
        ``"train"`` reads ``train-*-ubyte.gz`` (60000 images), ``"test"`` reads
        ``t10k-*-ubyte.gz`` (10000 images).  Uncompressed files without ``.gz`` are accepted too.
    root : str or Path, default=None
        Folder holding the four IDX files.  Defaults to the environment variable
        ``SKMSC_FASHION_MNIST_DIR`` if set, else ``/usr/share/datasets/fashion-mnist`` (where the
        Debian package ``dataset-fashion-mnist`` installs them).

    Returns
    -------
    dataset : ImageDataset
        ``images`` uint8 of shape (n, 28, 28), ``labels`` int64 of shape (n,), and the ten
        Fashion-MNIST ``class_names``.

    Raises
    ------
    FileNotFoundError
        If the folder or a file is missing.
    ValueError
        If a file is corrupt, truncated or has the wrong magic number (2051 for images,
        2049 for labels).

    Examples
    --------
    >>> from skmsc.datasets import load_fashion_mnist
    >>> train = load_fashion_mnist("train")  # doctest: +SKIP
    >>> train.images.shape, train.class_names[0]  # doctest: +SKIP
    ((60000, 28, 28), 'T-shirt/top')
    """
    _check_split(split)
    root = Path(root or os.environ.get(FASHION_MNIST_ENV) or DEFAULT_FASHION_MNIST_DIR)
    hint = (
        f"install it with `apt-get install dataset-fashion-mnist` (files go to "
        f"{DEFAULT_FASHION_MNIST_DIR}) or point root= / ${FASHION_MNIST_ENV} at a folder "
        "holding the IDX .gz files"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder {root} does not exist; {hint}")
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for kind, idx_ndim, magic in (("images", 3, 2051), ("labels", 1, 2049)):
        name = f"{prefix}-{kind}-idx{idx_ndim}-ubyte"
        candidates = [root / f"{name}.gz", root / name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"Fashion-MNIST file {candidates[0]} not found; {hint}")
        arrays.append(_read_idx(path, magic, idx_ndim))
    images, labels = arrays
    if len(images) != len(labels):
        raise ValueError(
            f"Fashion-MNIST in {root}: {len(images)} images but {len(labels)} labels ({split})"
        )
    return ImageDataset(images, labels.astype(np.int64), FASHION_MNIST_CLASSES)


# --------------------------------------------------------------------------------------------
# CIFAR (python pickle format)
# --------------------------------------------------------------------------------------------
class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle references anything but numpy array reconstruction.

    The CIFAR loaders read the data sets' pickle files with a restricted unpickler, which
    raises this instead of running code that a tampered file asks for.

    Examples
    --------
    >>> import pickle
    >>> from skmsc.datasets import UnsafePickleError
    >>> issubclass(UnsafePickleError, pickle.UnpicklingError)
    True
    """


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    # Python 3 pickles bytes (protocol < 3) as _codecs.encode(str, "latin1"); allow only that.
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(obj, "latin1", errors)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs dicts, lists, scalars, bytes and numpy arrays."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),  # protocol <= 4, numpy 1.x writers
            ("numpy._core.multiarray", "_reconstruct"),  # protocol <= 4, numpy 2.x writers
            ("numpy.core.numeric", "_frombuffer"),  # protocol 5
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load global {module}.{name}")


def _load_pickle(path):
    """Unpickle ``path`` (CIFAR format) without executing arbitrary code."""
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"cannot unpickle {path} (corrupt or truncated?): {exc!r}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a dict but a {type(obj).__name__}")
    return obj


def _field(d, key, path):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise ValueError(f"{path} has no {key!r} entry")


def _names(d, key, path):
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _field(d, key, path))


def _cifar_dir(root, subdir, marker, tarball):
    root = Path(root).expanduser()
    for folder in (root / subdir, root):
        if (folder / marker).is_file():
            return folder
    raise FileNotFoundError(
        f"{subdir} not found: expected {root / subdir / marker} (root may be the folder "
        f"containing {subdir}/ or that folder itself). Download {tarball} from {_CIFAR_URL} "
        f"and extract it into {root}; skmsc never downloads data."
    )


def _cifar_batches(files, label_key, class_names):
    images, labels = [], []
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR batch file {path} not found")
        d = _load_pickle(path)
        data = np.asarray(_field(d, "data", path))
        y = np.asarray(_field(d, label_key, path), dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"{path}: data must be uint8 (n, 3072), got {data.dtype} {data.shape}")
        if y.shape != (len(data),):
            raise ValueError(f"{path}: {len(data)} images but labels of shape {y.shape}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(y)
    images = np.ascontiguousarray(np.concatenate(images))
    return ImageDataset(images, np.concatenate(labels), class_names)


def load_cifar10(root, split="train"):
    """Load CIFAR-10 from the python-pickle batches (``cifar-10-batches-py``).

    Parameters
    ----------
    root : str or Path
        Folder containing ``cifar-10-batches-py/`` (as extracted from ``cifar-10-python.tar.gz``,
        the layout torchvision uses) or that folder itself.
    split : {"train", "test"}, default="train"
        ``"train"`` reads ``data_batch_1`` .. ``data_batch_5`` (50000 images), ``"test"`` reads
        ``test_batch`` (10000 images).

    Returns
    -------
    dataset : ImageDataset
        ``images`` uint8 of shape (n, 32, 32, 3), ``labels`` int64 of shape (n,), and
        ``class_names`` from ``batches.meta``.

    Raises
    ------
    FileNotFoundError
        If the folder or a batch file is missing.
    ValueError
        If a file is corrupt or has unexpected content.
    pickle.UnpicklingError
        If a file references anything other than numpy arrays (it is never executed).

    Examples
    --------
    >>> from skmsc.datasets import load_cifar10
    >>> test = load_cifar10("~/data", "test")  # doctest: +SKIP
    >>> test.images.shape  # doctest: +SKIP
    (10000, 32, 32, 3)
    """
    _check_split(split)
    folder = _cifar_dir(root, "cifar-10-batches-py", "batches.meta", "cifar-10-python.tar.gz")
    class_names = _names(_load_pickle(folder / "batches.meta"), "label_names", folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return _cifar_batches([folder / n for n in names], "labels", class_names)


def load_cifar100(root, split="train", label="coarse"):
    """Load CIFAR-100 from the python-pickle files (``cifar-100-python``).

    Parameters
    ----------
    root : str or Path
        Folder containing ``cifar-100-python/`` (as extracted from
        ``cifar-100-python.tar.gz``) or that folder itself.
    split : {"train", "test"}, default="train"
        ``"train"`` (50000 images) or ``"test"`` (10000 images).
    label : {"coarse", "fine"}, default="coarse"
        ``"coarse"`` gives the 20 super-classes used for anomaly detection by the paper,
        ``"fine"`` the 100 classes.

    Returns
    -------
    dataset : ImageDataset
        ``images`` uint8 of shape (n, 32, 32, 3), ``labels`` int64 of shape (n,), and the 20 or
        100 ``class_names`` from ``meta``.

    Raises
    ------
    FileNotFoundError
        If the folder or a file is missing.
    ValueError
        If a file is corrupt or has unexpected content.
    pickle.UnpicklingError
        If a file references anything other than numpy arrays (it is never executed).

    Examples
    --------
    >>> from skmsc.datasets import load_cifar100
    >>> train = load_cifar100("~/data", "train", label="coarse")  # doctest: +SKIP
    >>> len(train.class_names)  # doctest: +SKIP
    20
    """
    _check_split(split)
    if label not in ("coarse", "fine"):
        raise ValueError(f"label must be 'coarse' or 'fine', got {label!r}")
    folder = _cifar_dir(root, "cifar-100-python", "meta", "cifar-100-python.tar.gz")
    class_names = _names(_load_pickle(folder / "meta"), f"{label}_label_names", folder)
    return _cifar_batches([folder / split], f"{label}_labels", class_names)


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------
def load_image_folder(root, split="train"):
    """List the image files of a ``root/<split>/<class>/...`` folder tree.

    Parameters
    ----------
    root : str or Path
        Folder containing ``train/`` and ``test/``, each with one sub-folder per class.  Files
        are found recursively inside each class folder; only names ending in one of
        ``IMAGE_EXTENSIONS`` (case-insensitive) are kept and hidden files/folders are skipped.
    split : {"train", "test"}, default="train"
        Which sub-folder to list.

    Returns
    -------
    dataset : ImageFileDataset
        ``paths`` (str, sorted by class then relative path), ``labels`` int64, and
        ``class_names`` (the sorted class folder names of this split).  Decode the pixels with
        :func:`read_images`.

    Raises
    ------
    FileNotFoundError
        If ``root/<split>`` does not exist.

    Examples
    --------
    >>> from skmsc.datasets import load_image_folder, read_images
    >>> files = load_image_folder("my_data", "train")  # doctest: +SKIP
    >>> X = read_images(files.paths, size=(224, 224))  # doctest: +SKIP
    """
    _check_split(split)
    base = Path(root).expanduser() / split
    if not base.is_dir():
        raise FileNotFoundError(
            f"image folder {base} not found; expected the layout {Path(root) / split}/<class>/<img>"
        )
    class_dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        rel = [p.relative_to(class_dir) for p in class_dir.rglob("*") if p.is_file()]
        files = [
            class_dir / r
            for r in sorted(rel, key=Path.as_posix)
            if r.suffix.lower() in IMAGE_EXTENSIONS and not any(s.startswith(".") for s in r.parts)
        ]
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return ImageFileDataset(paths, np.array(labels, dtype=np.int64), [d.name for d in class_dirs])


def read_images(paths, size=None):
    """Decode image files into one RGB uint8 array.

    Every image is opened with Pillow, rotated/flipped according to its EXIF orientation tag
    (:func:`PIL.ImageOps.exif_transpose`) and converted to RGB (grayscale is replicated, palettes
    are expanded, an alpha channel is dropped).

    Parameters
    ----------
    paths : iterable of str or Path
        Image files, e.g. ``load_image_folder(...).paths``.
    size : tuple of int (H, W), default=None
        Resize every image to this height and width (bilinear).  Required when the images do not
        all have the same size, since they are stacked into one array.

    Returns
    -------
    images : ndarray of uint8, shape (n, H, W, 3)
        The decoded images, in the order of ``paths``.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        If a file cannot be decoded, or sizes differ and ``size`` is None; the message names the
        file.

    Examples
    --------
    >>> from skmsc.datasets import read_images
    >>> X = read_images(["a.png", "b.jpg"], size=(64, 64))  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (2, 64, 64, 3)
    """
    from PIL import Image

    images = []
    for path in paths:
        arr = decode_image(path)
        if size is not None:
            arr = np.asarray(
                Image.fromarray(arr).resize((size[1], size[0]), Image.Resampling.BILINEAR)
            )
        if images and arr.shape != images[0].shape:
            raise ValueError(
                f"image file {path} has size {arr.shape[:2]}, the first has "
                f"{images[0].shape[:2]}; pass size=(H, W) to resize them to a common size"
            )
        images.append(arr)
    if not images:
        return np.empty((0, *(size or (0, 0)), 3), dtype=np.uint8)
    return np.stack(images)


class OneClassSplit(NamedTuple):
    """Result of :func:`one_class_split`; unpacks as ``X_train, X_test, y_test``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.datasets import OneClassSplit
    >>> split = OneClassSplit(np.zeros((2, 4)), np.zeros((3, 4)), np.array([1, 0, 1]))
    >>> X_train, X_test, y_test = split
    >>> split.y_test is y_test
    True
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def one_class_split(dataset_train, dataset_test, normal_class):
    """Build the one-class anomaly detection task of Reiss & Hoshen (2023).

    Parameters
    ----------
    dataset_train : ImageDataset or ImageFileDataset
        Training set; only its images of ``normal_class`` are kept.
    dataset_test : ImageDataset or ImageFileDataset
        Test set; all of it is kept.
    normal_class : int or str
        The normal class, as an index into ``dataset_train.class_names`` or as a class name.  It
        is matched in the test set by name, so the two sets may list different classes (e.g. an
        image folder whose test split has extra anomaly folders).

    Returns
    -------
    split : OneClassSplit
        Named tuple ``(X_train, X_test, y_test)``: the normal training images (or paths), all
        test images (or paths), and int64 ``y_test`` with 1 for the normal class, 0 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.datasets import ImageDataset, one_class_split
    >>> train = ImageDataset(np.zeros((4, 2, 2), np.uint8), np.array([0, 1, 0, 1]), ["a", "b"])
    >>> test = ImageDataset(np.zeros((3, 2, 2), np.uint8), np.array([1, 0, 0]), ["a", "b"])
    >>> X_train, X_test, y_test = one_class_split(train, test, normal_class="b")
    >>> X_train.shape, y_test
    ((2, 2, 2), array([1, 0, 0]))
    """
    if isinstance(normal_class, str):
        name = normal_class
    else:
        if not 0 <= int(normal_class) < len(dataset_train.class_names):
            raise ValueError(f"normal_class {normal_class} is not a class index of the train set")
        name = dataset_train.class_names[int(normal_class)]
    for ds, which in ((dataset_train, "train"), (dataset_test, "test")):
        if name not in ds.class_names:
            raise ValueError(f"class {name!r} not in the {which} set classes {ds.class_names}")
    train_idx = dataset_train.class_names.index(name)
    test_idx = dataset_test.class_names.index(name)
    X_train = _samples(dataset_train)[dataset_train.labels == train_idx]
    y_test = (dataset_test.labels == test_idx).astype(np.int64)
    return OneClassSplit(X_train, _samples(dataset_test), y_test)


def subsample(dataset, n_per_class, *, random_state=None):
    """Draw ``n_per_class`` samples of every class present, without replacement.

    Parameters
    ----------
    dataset : ImageDataset or ImageFileDataset
        The data set to subsample.
    n_per_class : int
        Number of samples kept per class.
    random_state : int, RandomState instance or None, default=None
        Seed for the draw (see :func:`sklearn.utils.check_random_state`); an int gives the same
        subset every time.

    Returns
    -------
    subset : same type as ``dataset``
        The selected samples, in their original order, with the same ``class_names``.

    Raises
    ------
    ValueError
        If a class present in ``dataset`` has fewer than ``n_per_class`` samples.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.datasets import ImageDataset, subsample
    >>> ds = ImageDataset(np.zeros((6, 2, 2), np.uint8), np.array([0, 0, 0, 1, 1, 1]), "ab")
    >>> np.bincount(subsample(ds, 2, random_state=0).labels).tolist()
    [2, 2]
    """
    rng = check_random_state(random_state)
    chosen = []
    for c in np.unique(dataset.labels):
        idx = np.flatnonzero(dataset.labels == c)
        if len(idx) < n_per_class:
            raise ValueError(
                f"class {dataset.class_names[c]!r} has {len(idx)} samples, fewer than "
                f"n_per_class={n_per_class}"
            )
        chosen.append(rng.choice(idx, size=n_per_class, replace=False))
    idx = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)
    return _with_indices(dataset, idx)


# --------------------------------------------------------------------------------------------
# ELPV solar cells (PyPI elpv-dataset)
# --------------------------------------------------------------------------------------------
ELPV_ENV = "SKMSC_ELPV_DIR"
#: Defect probabilities the ELPV annotators gave (0 = defect-free).
ELPV_SEVERITIES = (0.0, 1 / 3, 2 / 3, 1.0)


class ELPVSplit(NamedTuple):
    """Result of :func:`load_elpv`; unpacks as ``X_train, X_test, y_test``.

    ``X_train`` holds defect-free cells only; ``y_test`` is 1 for a defect-free (normal)
    test cell and 0 for a defective one; ``defect_probability`` (0, 1/3, 2/3 or 1) and
    ``cell_type`` ("mono" or "poly") describe each test cell, ``test_files`` names its file.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.datasets import ELPVSplit
    >>> split = ELPVSplit(np.zeros((2, 4, 4)), np.zeros((1, 4, 4)), np.array([1]),
    ...                   np.array([0.0]), np.array(["mono"]), np.array(["cell0001.png"]))
    >>> X_train, X_test, y_test = split[:3]
    >>> X_train.shape, split.cell_type.tolist()
    ((2, 4, 4), ['mono'])
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    defect_probability: np.ndarray
    cell_type: np.ndarray
    test_files: np.ndarray


def _elpv_dir(root):
    if root is None:
        root = os.environ.get(ELPV_ENV)
    if root is None:
        import importlib.util

        spec = importlib.util.find_spec("elpv_dataset")
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                "The ELPV solar-cell images are not installed: run `pip install elpv-dataset` "
                f"(PyPI; CC BY-NC-SA), or pass root= (or set {ELPV_ENV}) to a folder holding "
                "labels.csv and images/."
            )
        root = Path(spec.origin).parent / "data"
    root = Path(root)
    if not (root / "labels.csv").is_file():
        raise FileNotFoundError(f"ELPV: {root / 'labels.csv'} not found (expected labels.csv "
                                "and images/ from the elpv-dataset package).")
    return root


def _read_elpv_labels(path):
    """(file names, defect probabilities, cell types) from ELPV's labels.csv, checked."""
    files, probabilities, types = [], [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{path}, line {number}: expected 'path probability type', "
                             f"got {line!r}")
        try:
            probability = float(fields[1])
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}: probability {fields[1]!r} is not a "
                             "number") from exc
        if not any(abs(probability - s) < 1e-3 for s in ELPV_SEVERITIES):
            raise ValueError(f"{path}, line {number}: probability {probability} is not one "
                             "of 0, 1/3, 2/3, 1")
        if fields[2] not in ("mono", "poly"):
            raise ValueError(f"{path}, line {number}: type {fields[2]!r} is not mono or poly")
        files.append(fields[0])
        probabilities.append(probability)
        types.append(fields[2])
    return np.array(files), np.array(probabilities), np.array(types)


def load_elpv(*, train_fraction=0.6, random_state=0, root=None):
    """The ELPV solar-cell images as a one-class task: fit on defect-free cells.

    2,624 electroluminescence images of photovoltaic cells (300x300, 8-bit grayscale), each
    with a defect probability (0, 1/3, 2/3, 1) and a cell type (mono/poly), from PyPI
    ``elpv-dataset`` (Buerhop-Lutz et al. 2018, Deitsch et al. 2019; CC BY-NC-SA 4.0: use
    it, do not redistribute the images). The protocol: a seeded ``train_fraction`` of the
    defect-free cells is the training set; the test set is the other defect-free cells plus
    every defective one.

    Parameters
    ----------
    train_fraction : float, default=0.6
        Fraction of the defect-free cells used for training, in (0, 1).
    random_state : int, RandomState instance or None, default=0
        Seed of the train/test draw of the defect-free cells.
    root : str or os.PathLike, default=None
        Folder holding ``labels.csv`` and ``images/``; default: the ``SKMSC_ELPV_DIR``
        environment variable, else the installed ``elpv_dataset`` package.

    Returns
    -------
    split : ELPVSplit
        ``(X_train, X_test, y_test, defect_probability, cell_type, test_files)``; images
        are uint8 ``(n, 300, 300)``.

    Examples
    --------
    >>> from skmsc.datasets import load_elpv
    >>> split = load_elpv()  # doctest: +SKIP
    >>> split.X_train.shape, int(split.y_test.sum()), len(split.y_test)  # doctest: +SKIP
    ((905, 300, 300), 603, 1719)
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction!r}")
    root = _elpv_dir(root)
    files, probabilities, types = _read_elpv_labels(root / "labels.csv")
    normal = np.flatnonzero(probabilities == 0)
    rng = check_random_state(random_state)
    n_train = int(round(train_fraction * len(normal)))
    train = np.sort(rng.choice(normal, size=n_train, replace=False))
    test = np.setdiff1d(np.arange(len(files)), train)
    images = _read_grayscale([root / f for f in files[np.concatenate([train, test])]])
    return ELPVSplit(
        X_train=images[: len(train)],
        X_test=images[len(train):],
        y_test=(probabilities[test] == 0).astype(np.int64),
        defect_probability=probabilities[test],
        cell_type=types[test],
        test_files=files[test],
    )


def _read_grayscale(paths):
    """8-bit grayscale image files of one size as uint8 ``(n, H, W)`` (no RGB copy)."""
    from PIL import Image

    images = None
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                if image.mode != "L":
                    raise ValueError(f"mode {image.mode}, expected 8-bit grayscale (L)")
                pixels = np.asarray(image)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"ELPV image not found: {path}") from exc
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read ELPV image {path}: {exc}") from exc
        if images is None:
            images = np.empty((len(paths), *pixels.shape), dtype=np.uint8)
        if pixels.shape != images.shape[1:]:
            raise ValueError(f"ELPV image {path} is {pixels.shape}, the first is "
                             f"{images.shape[1:]}")
        images[i] = pixels
    return images
