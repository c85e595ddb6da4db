"""Image collections given as files or PIL images, decoded lazily in batches.

The detector accepts, besides arrays, a sequence of image file paths or PIL images (or an
:class:`ImageFiles` wrapping one). Such a collection is never decoded as a whole: each
batch is decoded when the network needs it (by a few threads, while the network works on
the previous batch), so memory holds at most two batches of pixels whatever the number or
size of the files.

How files of different sizes meet the network
---------------------------------------------
Scoring (``extract_features``): every image goes through the backbone's evaluation
transform on its own, exactly as a uint8 array image does (shorter side resized to
``image_size / crop_fraction`` in uint8 as PIL does, central ``image_size`` square kept),
and only the results are stacked. So a file's score depends on its pixels alone, any size
is accepted, and same-size images give the same scores as files or as a uint8 array (up to
float rounding in the network).

Fine-tuning: the augmentation crops from whole images, so a batch needs one size. If all
training images share one size they are used as decoded, which is exactly the array path;
otherwise each is resized so its shorter side is ``image_size / crop_fraction`` and the
central square of that side is kept (the region the evaluation transform looks at).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .._fileio import NotRegularFileError, open_regular_file
from ._decode import check_bit_depth, decoding_reservation, image_pixels

# No torch here: listing and checking files (what the command line does before anything
# else) must not wait for it. Batches for the network come from skmsc.data._batches.

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "UnreadableImageError",
    "decode_image",
    "find_unreadable",
    "ImageNotFoundError",
    "is_image_collection",
    "is_url",
    "list_image_files",
]

# Decoding threads: Pillow and torch release the GIL while they work, so threads overlap
# decoding with the network without copying pixels between processes.
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)
#: File name extensions (lower case, with the dot) read as images.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


class UnreadableImageError(ValueError):
    """An image in a collection could not be read; the message names it.

    Examples
    --------
    >>> import os, tempfile
    >>> from skmsc.data.files import ImageFiles, UnreadableImageError
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.png")
    >>> with open(path, "w") as file:
    ...     _ = file.write("not an image")
    >>> try:
    ...     ImageFiles([path]).decode(0)
    ... except UnreadableImageError as exc:  # a ValueError too
    ...     print(str(exc).startswith(f"cannot read image {path}"), isinstance(exc, ValueError))
    True True
    """


class ImageNotFoundError(FileNotFoundError):
    """An image file of a collection does not exist; the message names it.

    Examples
    --------
    >>> from skmsc.data.files import ImageFiles, ImageNotFoundError
    >>> try:
    ...     ImageFiles(["no/such/image.png"]).decode(0)
    ... except ImageNotFoundError as exc:  # a FileNotFoundError too
    ...     print(exc)
    image file not found: no/such/image.png
    """


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(item) -> bool:
    """Whether ``item`` is a URL (``scheme://...``) rather than a local path.

    Examples
    --------
    >>> from skmsc.data.files import is_url
    >>> is_url("https://example.com/a.png"), is_url("s3://bucket/a.png"), is_url("C:/a.png")
    (True, True, False)
    """
    return isinstance(item, str) and _URL.match(item) is not None


def _is_image_item(item) -> bool:
    return isinstance(item, str | os.PathLike | Image.Image)


def _column_of_items(X):
    """The items of a one-column container that is not a list, tuple or numpy array (a
    pandas or polars Series, a one-column DataFrame, a Dask array, ...) as a 1-D numpy
    array; ``None`` for anything else, or for numeric dtypes (those hold pixels or
    features, and are left to the array path without being converted here)."""
    if isinstance(X, list | tuple | np.ndarray | str | bytes):
        return None
    shape = getattr(X, "shape", None)
    if not isinstance(shape, tuple) or len(shape) not in (1, 2):
        return None
    if len(shape) == 2 and shape[1] != 1:
        return None
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
        return None  # e.g. a Dask array of numbers: not computed here
    try:
        values = np.asarray(X)  # computes a Dask array of paths (small); copies a Series
    except (TypeError, ValueError):
        return None
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    return values if values.ndim == 1 else None


def decode_image(image, *, bit_depth=None):
    """Decode one image file (or PIL image) into an RGB array ``(H, W, 3)``.

    The EXIF orientation tag is applied (:func:`PIL.ImageOps.exif_transpose`) and the image is
    converted to RGB (grayscale replicated, palettes expanded, alpha dropped).  The whole file is
    decoded, so a truncated or corrupt file raises here rather than giving wrong pixels.

    8-bit images give ``uint8`` (0-255). Images of more than 8 bits per sample give float32
    in [0, 1] without losing precision: 16-bit grayscale PNG/TIFF/PGM divided by 65535
    (the container's full range, as the PNG and TIFF standards say), or by
    ``2**bit_depth - 1`` when ``bit_depth`` is given (e.g. 12 for a 12-bit camera that
    stores 0-4095 in 16-bit files); float TIFFs as they are if in [0, 1]. Values outside
    the range, NaN, signed or 32-bit integer images of unknown range are refused with a
    ``ValueError``. A multi-frame file (animated GIF/PNG/WebP, multi-page TIFF) gives its
    first frame: split it (``PIL.ImageSequence``) to use every frame.

    Only regular files are read: a FIFO, a device or a folder is refused at once (a FIFO
    would block forever). Decoding takes about 7 bytes a pixel (14 for 16-bit and float
    images); all threads together reserve at most
    ``skmsc.data._decode.DECODE_MEMORY_BUDGET_BYTES`` (512 MiB) at once, so larger images
    decode one after the other. Pillow refuses images above twice
    ``PIL.Image.MAX_IMAGE_PIXELS`` (179 megapixels by default).

    Parameters
    ----------
    image : str, os.PathLike or PIL.Image.Image
        An image file path, or an already opened image.
    bit_depth : int in [1, 16], default=None
        Bits used by the samples of images stored with more than 8 bits per sample;
        ``None``: the container's range (65535 for 16 bits). Refused for 8-bit images.

    Returns
    -------
    pixels : ndarray of shape (H, W, 3)
        ``uint8`` for 8-bit images, float32 in [0, 1] for deeper ones.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file cannot be decoded or its values cannot be read faithfully; the
        message names the file.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> from skmsc.data.files import decode_image
    >>> decode_image(Image.new("L", (4, 3), color=200)).shape  # grayscale -> RGB
    (3, 4, 3)
    >>> deep = Image.fromarray(np.full((2, 2), 4095, dtype=np.uint16))  # 16-bit grayscale
    >>> round(float(decode_image(deep).max()), 4), float(decode_image(deep, bit_depth=12).max())
    (0.0625, 1.0)
    """
    if isinstance(image, bytes):
        raise TypeError(f"image paths must be str or os.PathLike, got bytes {image!r}: pass "
                        "os.fsdecode(path).")
    try:
        if isinstance(image, Image.Image):
            with decoding_reservation(image):
                return image_pixels(image, bit_depth)
        with open_regular_file(image) as file, Image.open(file) as img:
            with decoding_reservation(img):
                return image_pixels(img, bit_depth)
    except FileNotFoundError:
        raise
    except NotRegularFileError as exc:
        raise ValueError(f"cannot decode image file {image}: {exc.strerror}") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode image file {image}: {exc}") from exc


def is_image_collection(X) -> bool:
    """Whether ``X`` is a collection of image files / PIL images rather than an array.

    True for an :class:`ImageFiles`, and for a non-empty list, tuple or 1-D numpy array of
    str, os.PathLike or PIL images (all elements of those types); also for such items in a
    pandas or polars ``Series``, a one-column ``DataFrame`` or a 1-D Dask array.

    Parameters
    ----------
    X : object
        What was passed to ``fit`` or a scoring method.

    Returns
    -------
    is_collection : bool

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.data.files import is_image_collection
    >>> is_image_collection(["a.png", "b.jpg"]), is_image_collection(np.zeros((2, 8, 8)))
    (True, False)
    """
    if isinstance(X, ImageFiles):
        return True
    column = _column_of_items(X)
    if column is not None:
        X = column
    if isinstance(X, np.ndarray):
        if X.ndim != 1 or X.dtype.kind not in "OU":
            return False
    elif not isinstance(X, list | tuple):
        return False
    return len(X) > 0 and all(_is_image_item(item) for item in X)


def as_image_files(X) -> ImageFiles | None:
    """``X`` as an :class:`ImageFiles` if it is an image collection, else ``None``.

    A pandas/polars Series, one-column DataFrame or Dask array of paths gives its items
    (the Dask array is computed: it holds paths, not pixels).
    """
    if isinstance(X, ImageFiles):
        return X
    if not is_image_collection(X):
        return None
    column = _column_of_items(X)
    return ImageFiles(X if column is None else column.tolist())


def _name(item, index: int) -> str:
    return os.fspath(item) if isinstance(item, str | os.PathLike) else f"PIL image #{index}"


class ImageFiles(Sequence):
    """A sequence of image files (or PIL images), read lazily by the detector.

    Passing a plain list of paths to ``fit``/``score_samples`` wraps it in this class with
    default settings; wrap it yourself to choose the number of decoding threads.

    Parameters
    ----------
    items : sequence of str, os.PathLike or PIL.Image.Image
        Image files in any format Pillow reads, or opened images. EXIF orientation is
        applied and every image is converted to RGB (grayscale replicated, palettes
        expanded, alpha dropped); see :func:`decode_image` for 16-bit and float images,
        multi-frame files and the memory decoding takes.
    n_workers : int, default=None
        Threads decoding images. ``None`` means ``min(4, os.cpu_count())``; ``0`` decodes
        in the calling thread.
    bit_depth : int in [1, 16], default=None
        Bits used by images stored with more than 8 bits per sample (e.g. 12 for a 12-bit
        camera writing 16-bit files); ``None``: the full range of the file's type.

    Notes
    -----
    An image that cannot be read raises :class:`UnreadableImageError` (a ``ValueError``)
    naming it; a missing file raises ``FileNotFoundError``. The detector never returns a
    score for an image it could not read. To leave unreadable files out on purpose, list
    them first with :func:`find_unreadable`.

    Examples
    --------
    >>> from skmsc.data.files import ImageFiles, list_image_files
    >>> files = ImageFiles(list_image_files("normal/"), n_workers=2)  # doctest: +SKIP
    >>> det.fit(files)  # doctest: +SKIP
    """

    def __init__(self, items, *, n_workers=None, bit_depth=None):
        self.items = list(items)
        bad = [i for i, item in enumerate(self.items) if not _is_image_item(item)]
        if bad:
            kind = type(self.items[bad[0]]).__name__
            hint = " Pass paths as str: os.fsdecode(path)." if kind == "bytes" else ""
            raise TypeError(
                f"ImageFiles takes file paths or PIL images; item {bad[0]} is {kind}.{hint}"
            )
        urls = [i for i, item in enumerate(self.items) if is_url(item)]
        if urls:
            raise ValueError(
                f"URLs are not fetched: item {urls[0]} is {self.items[urls[0]]!r}"
                f"{f' ({len(urls)} URLs in all)' if len(urls) > 1 else ''}. skmsc reads "
                "local files only: download the images first (e.g. with "
                "urllib.request.urlretrieve) and pass the local paths."
            )
        if n_workers is not None and (isinstance(n_workers, bool)
                                      or not isinstance(n_workers, int) or n_workers < 0):
            raise ValueError(f"n_workers must be None or an int >= 0, got {n_workers!r}.")
        check_bit_depth(bit_depth)
        self.n_workers = n_workers
        self.bit_depth = bit_depth

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def subset(self, rows) -> ImageFiles:
        """The images at ``rows`` (a slice or integer indices), with the same decoding
        workers."""
        items = (self.items[rows] if isinstance(rows, slice)
                 else [self.items[int(i)] for i in rows])
        return ImageFiles(items, n_workers=self.n_workers, bit_depth=self.bit_depth)

    def __repr__(self) -> str:
        depth = "" if self.bit_depth is None else f", bit_depth={self.bit_depth}"
        return f"ImageFiles(<{len(self)} images>, n_workers={self.n_workers}{depth})"

    def describe(self) -> str:
        """What the collection holds, in words: how many files, and the folder they share.

        Examples
        --------
        >>> from skmsc.data.files import ImageFiles
        >>> ImageFiles(["/data/good/a.png", "/data/good/b/c.png"]).describe()
        '2 image files under /data/good'
        """
        paths = [os.path.abspath(os.fspath(item)) for item in self.items
                 if isinstance(item, str | os.PathLike)]
        n_pil = len(self.items) - len(paths)
        parts = []
        if paths:
            folder = os.path.commonpath([os.path.dirname(p) for p in paths])
            parts.append(f"{len(paths)} image file{'s' if len(paths) != 1 else ''} under "
                         f"{folder}")
        if n_pil:
            parts.append(f"{n_pil} PIL image{'s' if n_pil != 1 else ''}")
        return " and ".join(parts)

    @property
    def names(self) -> list[str]:
        """The file path of each item (``"PIL image #i"`` for PIL images)."""
        return [_name(item, i) for i, item in enumerate(self.items)]

    def decode(self, index: int) -> np.ndarray:
        """Pixels of item ``index`` as RGB ``(H, W, 3)`` (see :func:`decode_image`)."""
        item = self.items[index]
        try:
            return decode_image(item, bit_depth=self.bit_depth)
        except FileNotFoundError as exc:
            raise ImageNotFoundError(f"image file not found: {_name(item, index)}") from exc
        except ValueError as exc:
            reason = str(exc.__cause__ or exc)
            raise UnreadableImageError(
                f"cannot read image {_name(item, index)}: {reason}"
            ) from exc

    def image_size(self, index: int) -> tuple[int, int]:
        """(height, width) as displayed (after EXIF orientation), read from the header only."""
        item = self.items[index]
        try:
            with contextlib.ExitStack() as stack:
                img = item
                if not isinstance(item, Image.Image):
                    file = stack.enter_context(open_regular_file(item))
                    img = stack.enter_context(Image.open(file))
                width, height = img.size
                if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                    width, height = height, width
        except FileNotFoundError as exc:
            raise ImageNotFoundError(f"image file not found: {_name(item, index)}") from exc
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise UnreadableImageError(f"cannot read image {_name(item, index)}: {exc}") from exc
        return height, width

    # ----------------------------------------------------------------- batches
    def _workers(self) -> int:
        return DEFAULT_WORKERS if self.n_workers is None else self.n_workers

    def _map_batches(self, row_batches: Iterable[np.ndarray], per_image) -> Iterator[list]:
        """``[per_image(i) for i in rows]`` for each batch, decoding one batch ahead."""
        workers = self._workers()
        if workers == 0:
            for rows in row_batches:
                yield [per_image(int(i)) for i in rows]
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="skmsc-decode") as pool:
            pending = None
            for rows in row_batches:
                submitted = [pool.submit(per_image, int(i)) for i in rows]
                if pending is not None:
                    yield [f.result() for f in pending]
                pending = submitted
            if pending is not None:
                yield [f.result() for f in pending]


def find_unreadable(items, *, n_workers=None, bit_depth=None) -> list[tuple[str, str]]:
    """Decode every image once and list those that fail, with the reason.

    Use it to leave unreadable files out on purpose (the detector's methods raise on them)::

        bad = dict(find_unreadable(paths))
        scores = det.score_samples([p for p in paths if str(p) not in bad])

    Parameters
    ----------
    items : sequence of str, os.PathLike or PIL.Image.Image
    n_workers : int, default=None
        Decoding threads, as in :class:`ImageFiles`.
    bit_depth : int, default=None
        As in :class:`ImageFiles`.

    Returns
    -------
    failures : list of (name, reason)
        In input order; empty when every image decodes.

    Examples
    --------
    >>> from PIL import Image
    >>> from skmsc.data.files import find_unreadable
    >>> find_unreadable([Image.new("RGB", (8, 8))])
    []
    """
    files = items if isinstance(items, ImageFiles) else ImageFiles(
        items, n_workers=n_workers, bit_depth=bit_depth)

    def check(index: int):
        try:
            files.decode(index)
        except (ImageNotFoundError, UnreadableImageError) as exc:
            return files.names[index], str(exc)
        return None

    rows = [np.arange(len(files))]
    (results,) = list(files._map_batches(rows, check)) or [[]]
    return [r for r in results if r is not None]


def list_image_files(folder, *, recursive=True, extensions=None) -> list[str]:
    """Image files under ``folder``, sorted by relative path; hidden files are skipped.

    Parameters
    ----------
    folder : str or os.PathLike
    recursive : bool, default=True
        Also look in sub-folders.
    extensions : iterable of str, default=None
        File name endings to keep, case-insensitive, with or without the dot (``"png"``).
        ``None`` means every format listed in :data:`IMAGE_EXTENSIONS`.

    Returns
    -------
    paths : list of str

    Raises
    ------
    NotADirectoryError
        If ``folder`` is not a directory.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from skmsc.data.files import list_image_files
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (8, 8)).save(folder / "a.png")
    >>> (folder / "notes.txt").write_text("not an image")
    12
    >>> [Path(p).name for p in list_image_files(folder)]
    ['a.png']
    """
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise NotADirectoryError(f"not a directory: {base}")
    if extensions is None:
        wanted = IMAGE_EXTENSIONS
    else:
        wanted = {("." + e.lower().lstrip(".")) for e in extensions}
    found = base.rglob("*") if recursive else base.glob("*")
    rel = [p.relative_to(base) for p in found if p.is_file()]
    return [
        str(base / r)
        for r in sorted(rel, key=Path.as_posix)
        if r.suffix.lower() in wanted and not any(part.startswith(".") for part in r.parts)
    ]
