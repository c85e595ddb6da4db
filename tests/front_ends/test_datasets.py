"""Tests for skmsc.datasets: every test writes its own small files to tmp_path."""

import codecs
import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skmsc.datasets import (
    FASHION_MNIST_CLASSES,
    ImageDataset,
    ImageFileDataset,
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_image_folder,
    one_class_split,
    read_images,
    subsample,
)

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------
def write_idx(path, array, magic, compress=True):
    header = struct.pack(f">{1 + array.ndim}i", magic, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        data = gzip.compress(data)
    Path(path).write_bytes(data)


@pytest.fixture
def fmnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for prefix, n in (("train", 7), ("t10k", 4)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
        data[prefix] = (images, labels)
    return tmp_path, data


@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_fashion_mnist_round_trip(fmnist_dir, split, prefix):
    root, data = fmnist_dir
    ds = load_fashion_mnist(split, root=root)
    images, labels = data[prefix]
    assert ds.images.dtype == np.uint8 and ds.images.shape == images.shape
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (len(images),)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.class_names == FASHION_MNIST_CLASSES and len(ds.class_names) == 10


def test_fashion_mnist_uncompressed_and_env_var(tmp_path, monkeypatch):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    write_idx(tmp_path / "train-images-idx3-ubyte", images, 2051, compress=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([3, 9]), 2049, compress=False)
    monkeypatch.setenv("SKMSC_FASHION_MNIST_DIR", str(tmp_path))
    ds = load_fashion_mnist("train")
    np.testing.assert_array_equal(ds.images, images)
    assert ds.labels.tolist() == [3, 9]
    # An explicit root wins over the environment variable.
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_fashion_mnist("train", root=tmp_path / "nowhere")


def test_fashion_mnist_wrong_magic(fmnist_dir):
    root, data = fmnist_dir
    bad = root / "train-labels-idx1-ubyte.gz"
    write_idx(bad, data["train"][1], 2051)  # image magic in a label file
    with pytest.raises(ValueError, match="magic") as info:
        load_fashion_mnist("train", root=root)
    assert str(bad) in str(info.value)


def test_fashion_mnist_truncated_payload(fmnist_dir):
    root, _ = fmnist_dir
    bad = root / "train-images-idx3-ubyte.gz"
    raw = struct.pack(">4i", 2051, 7, 28, 28) + bytes(6 * 28 * 28)  # one image short
    bad.write_bytes(gzip.compress(raw))
    with pytest.raises(ValueError, match="truncated") as info:
        load_fashion_mnist("train", root=root)
    assert str(bad) in str(info.value)
    bad.write_bytes(gzip.compress(raw + bytes(2 * 28 * 28)))  # one image too many
    with pytest.raises(ValueError, match="expected") as info:
        load_fashion_mnist("train", root=root)
    assert str(bad) in str(info.value)


def test_fashion_mnist_truncated_gzip_stream(fmnist_dir):
    root, _ = fmnist_dir
    bad = root / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(ValueError) as info:
        load_fashion_mnist("test", root=root)
    assert str(bad) in str(info.value)


def test_fashion_mnist_count_mismatch(fmnist_dir):
    root, _ = fmnist_dir
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(3), 2049)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        load_fashion_mnist("test", root=root)


def test_fashion_mnist_missing(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("train", root=missing)
    assert str(missing) in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    # Folder exists but a file is absent: the message names that file.
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        load_fashion_mnist("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", root=tmp_path)


@pytest.mark.skipif(
    not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="real Fashion-MNIST absent: `apt-get install dataset-fashion-mnist` to run this test",
)
def test_real_fashion_mnist():
    train = load_fashion_mnist("train", root=DEBIAN_FMNIST)
    test = load_fashion_mnist("test", root=DEBIAN_FMNIST)
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28) and test.labels.shape == (10000,)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.images.max() == 255 and train.images.min() == 0


# --------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100
# --------------------------------------------------------------------------------------------
def dump(path, obj, protocol=2):
    Path(path).write_bytes(pickle.dumps(obj, protocol=protocol))


def cifar_pixel(data, i, row, col, channel):
    """Where CIFAR stores a pixel: channel planes of 32x32, row-major."""
    return data[i, channel * 1024 + row * 32 + col]


@pytest.fixture(params=[2, 4, 5], ids=lambda p: f"protocol{p}")
def cifar10_root(tmp_path, request):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"] + [b"c5", b"c6", b"c7", b"c8"]
    names.append(b"truck")
    dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072}, request.param)
    batches = {}
    for name, n in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()  # plain list, as in the real files
        dump(folder / name, {b"batch_label": b"x", b"data": data, b"labels": labels},
             request.param)  # fmt: skip
        batches[name] = (data, labels)
    return tmp_path, batches


def test_cifar10_round_trip(cifar10_root):
    root, batches = cifar10_root
    train = load_cifar10(root, "train")
    assert train.images.shape == (10, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64
    assert train.class_names[:3] == ("airplane", "automobile", "bird")
    assert train.class_names[9] == "truck"
    data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert train.labels.tolist() == labels
    for i, row, col, ch in [(0, 0, 0, 0), (3, 1, 2, 0), (9, 31, 5, 2), (4, 17, 30, 1)]:
        assert train.images[i, row, col, ch] == cifar_pixel(data, i, row, col, ch)
    # The root may also be the cifar-10-batches-py folder itself.
    test = load_cifar10(root / "cifar-10-batches-py", "test")
    data, labels = batches["test_batch"]
    assert test.images.shape == (3, 32, 32, 3) and test.labels.tolist() == labels
    expected = data.reshape(3, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(test.images, expected)


def test_cifar_numpy1_pickle_module_names(tmp_path):
    """Pickles written by numpy 1.x (and the real CIFAR files) name numpy.core.multiarray."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    dump(folder / "batches.meta", {b"label_names": [b"a"] * 10})
    data = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    raw = pickle.dumps({b"data": data, b"labels": [1, 2]}, protocol=2)
    assert b"numpy._core.multiarray" in raw  # written by numpy 2, protocol 2 = text GLOBALs
    (folder / "test_batch").write_bytes(raw.replace(b"numpy._core", b"numpy.core"))
    test = load_cifar10(tmp_path, "test")
    assert test.labels.tolist() == [1, 2]
    assert test.images[1, 0, 1, 2] == cifar_pixel(data, 1, 0, 1, 2)


class Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("func", [os.system, eval], ids=["os.system", "eval"])
def test_cifar_malicious_pickle_refused(tmp_path, func):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"
    payload = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    dump(folder / "batches.meta", {b"label_names": [b"a"] * 10, b"x": Evil(func, payload)})
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global") as info:
        load_cifar10(tmp_path, "test")
    assert func.__name__ in str(info.value)
    assert str(folder / "batches.meta") in str(info.value)
    assert not marker.exists()


class CodecCall:
    def __reduce__(self):
        return codecs.encode, ("abc", "rot13")


def test_cifar_pickle_codecs_only_latin1(tmp_path):
    """Protocol-2 pickles encode bytes via _codecs.encode(str, "latin1"); nothing else passes."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    dump(folder / "batches.meta", {b"label_names": [b"a"] * 10, b"x": CodecCall()})
    assert b"_codecs" in (folder / "batches.meta").read_bytes()
    with pytest.raises(pickle.UnpicklingError, match="rot13"):
        load_cifar10(tmp_path, "test")


def test_cifar_corrupt_pickle(cifar10_root):
    root, _ = cifar10_root
    bad = root / "cifar-10-batches-py" / "test_batch"
    bad.write_bytes(bad.read_bytes()[:500])
    with pytest.raises(ValueError) as info:
        load_cifar10(root, "test")
    assert str(bad) in str(info.value)


def test_cifar_wrong_content(cifar10_root):
    root, _ = cifar10_root
    bad = root / "cifar-10-batches-py" / "test_batch"
    dump(bad, {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(root, "test")
    dump(bad, {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(ValueError, match="labels"):
        load_cifar10(root, "test")


def test_cifar_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path, "train")
    msg = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "cifar-10-python.tar.gz" in msg
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar100(tmp_path, "train")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    dump(folder / "batches.meta", {b"label_names": [b"a"] * 10})
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path, "train")


@pytest.fixture
def cifar100_root(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine_names = [f"fine{i}".encode() for i in range(100)]
    coarse_names = [f"coarse{i}".encode() for i in range(20)]
    dump(folder / "meta", {b"fine_label_names": fine_names, b"coarse_label_names": coarse_names})
    out = {}
    for split, n in (("train", 5), ("test", 3)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, size=n).tolist()
        coarse = [f // 5 for f in fine]
        dump(folder / split, {b"data": data, b"fine_labels": fine, b"coarse_labels": coarse})
        out[split] = (data, fine, coarse)
    return tmp_path, out


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar100_round_trip(cifar100_root, split):
    root, out = cifar100_root
    data, fine, coarse = out[split]
    ds = load_cifar100(root, split)  # coarse by default
    assert ds.images.shape == (len(data), 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == coarse
    assert len(ds.class_names) == 20 and ds.class_names[3] == "coarse3"
    np.testing.assert_array_equal(ds.images, data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    ds_fine = load_cifar100(root / "cifar-100-python", split, label="fine")
    assert ds_fine.labels.tolist() == fine and len(ds_fine.class_names) == 100
    with pytest.raises(ValueError, match="label"):
        load_cifar100(root, split, label="medium")


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------
def save(img, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def test_load_image_folder_layout(tmp_path):
    gray = Image.new("L", (4, 4), 0)
    for rel in ["cat/b.png", "cat/sub/a.png", "cat/A.JPG", "dog/z.bmp", "dog/deeper/x/y.jpeg"]:
        save(gray, tmp_path / "train" / rel)
    (tmp_path / "train/cat/notes.txt").write_text("not an image")
    (tmp_path / "train/cat/Thumbs.db").write_bytes(b"\0")
    save(gray, tmp_path / "train/cat/.cache/c.png")  # hidden folder: skipped
    save(gray, tmp_path / "train/.hidden_class/h.png")  # hidden class: skipped
    save(gray, tmp_path / "test/good/t.png")

    ds = load_image_folder(tmp_path, "train")
    assert isinstance(ds, ImageFileDataset)
    assert ds.class_names == ("cat", "dog")
    rel = [Path(p).relative_to(tmp_path / "train").as_posix() for p in ds.paths]
    assert rel == ["cat/A.JPG", "cat/b.png", "cat/sub/a.png", "dog/deeper/x/y.jpeg", "dog/z.bmp"]
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 0, 0, 1, 1]
    assert load_image_folder(tmp_path, "test").class_names == ("good",)
    with pytest.raises(FileNotFoundError) as info:
        load_image_folder(tmp_path / "elsewhere", "train")
    assert str(tmp_path / "elsewhere" / "train") in str(info.value)


def test_read_images_modes(tmp_path):
    gray = save(Image.new("L", (5, 3), 77), tmp_path / "gray.png")
    rgba = save(Image.new("RGBA", (5, 3), (10, 20, 30, 128)), tmp_path / "rgba.png")
    pal = Image.new("P", (5, 3), 1)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal = save(pal, tmp_path / "palette.png")
    assert Image.open(pal).mode == "P"

    X = read_images([gray, rgba, str(pal)])
    assert X.shape == (3, 3, 5, 3) and X.dtype == np.uint8
    assert (X[0] == 77).all()
    assert (X[1] == [10, 20, 30]).all()
    assert (X[2] == [200, 100, 50]).all()


def test_read_images_exif_orientation(tmp_path):
    # Stored 40 wide x 20 high: left half red, right half blue.
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(img, tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    assert np.asarray(Image.open(path)).shape == (20, 40, 3)  # raw decode is not rotated

    (X,) = read_images([path])
    assert X.shape == (40, 20, 3)  # displayed: 20 wide x 40 high
    top, bottom = X[:15].reshape(-1, 3).mean(0), X[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 50  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 50


def test_read_images_sizes(tmp_path):
    a = save(Image.new("RGB", (8, 6), (1, 2, 3)), tmp_path / "a.png")
    b = save(Image.new("RGB", (5, 9), (4, 5, 6)), tmp_path / "b.png")
    with pytest.raises(ValueError, match="size=") as info:
        read_images([a, b])
    assert str(b) in str(info.value)
    X = read_images([a, b], size=(4, 7))
    assert X.shape == (2, 4, 7, 3)
    assert (X[0] == [1, 2, 3]).all() and (X[1] == [4, 5, 6]).all()
    assert read_images([], size=(4, 7)).shape == (0, 4, 7, 3)


def test_read_images_corrupt(tmp_path):
    good = save(Image.new("RGB", (4, 4)), tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(ValueError) as info:
        read_images([good, bad])
    assert str(bad) in str(info.value)
    truncated = tmp_path / "truncated.png"
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    save(Image.fromarray(noisy), truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(ValueError) as info:
        read_images([truncated])
    assert str(truncated) in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_images([tmp_path / "missing.png"])


# --------------------------------------------------------------------------------------------
# Protocol helpers
# --------------------------------------------------------------------------------------------
def numbered(labels, names):
    """A dataset whose i-th image is filled with the value i, to track what is selected."""
    n = len(labels)
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 2, 2)).copy()
    return ImageDataset(images, np.array(labels), names)


def test_one_class_split():
    train = numbered([0, 1, 2, 1, 0, 1], ["a", "b", "c"])
    test = numbered([2, 1, 0, 1, 2], ["a", "b", "c"])
    X_train, X_test, y_test = one_class_split(train, test, normal_class=1)
    assert X_train[:, 0, 0].tolist() == [1, 3, 5]
    assert X_test[:, 0, 0].tolist() == [0, 1, 2, 3, 4]
    assert y_test.dtype == np.int64 and y_test.tolist() == [0, 1, 0, 1, 0]
    split = one_class_split(train, test, normal_class="c")
    assert split.X_train[:, 0, 0].tolist() == [2] and split.y_test.tolist() == [1, 0, 0, 0, 1]
    with pytest.raises(ValueError):
        one_class_split(train, test, normal_class=3)
    with pytest.raises(ValueError, match="'z'"):
        one_class_split(train, test, normal_class="z")


def test_one_class_split_by_name_with_different_test_classes():
    """Image-folder style: train has only 'good', test lists anomaly folders first."""
    train = ImageFileDataset(["g1", "g2"], [0, 0], ["good"])
    test = ImageFileDataset(["c1", "g3", "s1"], [0, 1, 2], ["crack", "good", "scratch"])
    X_train, X_test, y_test = one_class_split(train, test, normal_class=0)
    assert X_train.tolist() == ["g1", "g2"]
    assert X_test.tolist() == ["c1", "g3", "s1"]
    assert y_test.tolist() == [0, 1, 0]


def test_subsample():
    ds = numbered([0] * 10 + [1] * 6 + [2] * 4, ["a", "b", "c"])
    sub = subsample(ds, 3, random_state=0)
    assert isinstance(sub, ImageDataset) and sub.class_names == ds.class_names
    assert np.bincount(sub.labels).tolist() == [3, 3, 3]
    picked = sub.images[:, 0, 0].astype(int)
    assert (np.diff(picked) > 0).all()  # original order, no duplicates
    np.testing.assert_array_equal(ds.labels[picked], sub.labels)
    again = subsample(ds, 3, random_state=0)
    np.testing.assert_array_equal(again.images, sub.images)
    draws = {tuple(subsample(ds, 3, random_state=s).images[:, 0, 0]) for s in range(5)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="'c' has 4 samples"):
        subsample(ds, 5, random_state=0)
    files = subsample(ImageFileDataset(["p0", "p1", "p2"], [0, 1, 1], "xy"), 1, random_state=0)
    assert files.paths[0] == "p0" and files.labels.tolist() == [0, 1]


def test_dataset_validation():
    with pytest.raises(ValueError, match="shape"):
        ImageDataset(np.zeros((3, 2, 2), np.uint8), np.array([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="lie in"):
        ImageDataset(np.zeros((2, 2, 2), np.uint8), np.array([0, 2]), ["a", "b"])
    ds = ImageDataset(np.zeros((2, 2, 2), np.uint8), np.array([0, 1], dtype=np.int32), "ab")
    assert ds.labels.dtype == np.int64 and ds.class_names == ("a", "b") and len(ds) == 2


# ------------------------------------------------------------------------------ ELPV
def _fake_elpv(root, probabilities, types, size=(12, 12)):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    lines = []
    rng = np.random.default_rng(0)
    for i, (p, t) in enumerate(zip(probabilities, types, strict=True)):
        name = f"images/cell{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(root / name)
        lines.append(f"{name}  {p}  {t}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_load_elpv_protocol_from_files_the_test_makes(tmp_path):
    from skmsc.datasets import load_elpv

    probabilities = [0.0] * 10 + [0.3333333333333333, 0.6666666666666666, 1.0] * 2
    types = ["mono", "poly"] * 8
    root = _fake_elpv(tmp_path / "elpv", probabilities, types)
    split = load_elpv(root=root, random_state=0)
    assert split.X_train.shape == (6, 12, 12) and split.X_train.dtype == np.uint8
    assert len(split.X_test) == 10 and split.y_test.sum() == 4
    assert np.all(split.defect_probability[split.y_test == 1] == 0)
    assert np.all(split.defect_probability[split.y_test == 0] > 0)
    assert set(split.cell_type) == {"mono", "poly"}
    # Pixels are the files' own, and the draw is seeded.
    from PIL import Image

    first = np.asarray(Image.open(root / split.test_files[0]))
    np.testing.assert_array_equal(split.X_test[0], first)
    again = load_elpv(root=root, random_state=0)
    np.testing.assert_array_equal(again.X_train, split.X_train)
    other = load_elpv(root=root, random_state=1)
    assert not np.array_equal(other.X_train, split.X_train)


def test_load_elpv_names_bad_label_lines(tmp_path):
    from skmsc.datasets import load_elpv

    root = _fake_elpv(tmp_path / "elpv", [0.0, 0.5], ["mono", "mono"])
    with pytest.raises(ValueError, match=r"line 2: probability 0.5 is not one of"):
        load_elpv(root=root)
    (root / "labels.csv").write_text("images/cell0000.png 0.0 amorphous\n")
    with pytest.raises(ValueError, match="type 'amorphous' is not mono or poly"):
        load_elpv(root=root)
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        load_elpv(root=tmp_path / "missing")
    with pytest.raises(ValueError, match="train_fraction"):
        load_elpv(root=root, train_fraction=1.0)


def test_load_elpv_finds_the_installed_package_and_splits_its_labels(monkeypatch):
    """The quick half of the test below: the package's own labels.csv and files give the
    documented split; three real images are decoded, not all 2,624 (~4 s)."""
    pytest.importorskip("elpv_dataset")
    import skmsc.datasets as datasets

    decode, asked = datasets._read_grayscale, []

    def first_three(paths):
        asked.extend(paths)
        assert all(path.is_file() for path in paths)
        first = decode(paths[:3])
        images = np.zeros((len(paths), *first.shape[1:]), first.dtype)  # pages untouched
        images[:3] = first
        return images

    monkeypatch.setattr(datasets, "_read_grayscale", first_three)
    split = datasets.load_elpv()
    assert len(asked) == len(set(asked)) == 2624
    assert split.X_train.shape == (905, 300, 300) and split.X_train.dtype == np.uint8
    assert split.X_train[:3].any()
    assert len(split.y_test) == 1719 and int(split.y_test.sum()) == 603


def test_load_elpv_installed_package_when_present():
    """Every image of the installed package decoded (slow: 2,624 PNG files)."""
    pytest.importorskip("elpv_dataset")
    from skmsc.datasets import load_elpv

    split = load_elpv()
    assert split.X_train.shape == (905, 300, 300)
    assert len(split.y_test) == 1719 and int(split.y_test.sum()) == 603
