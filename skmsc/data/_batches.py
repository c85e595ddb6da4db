"""One way in for images: batches from an array or from image files, for the network.

The torch layer never asks what kind of input it has. It gets a *batch source*
(:class:`ArrayBatches` or :class:`FileBatches`: ``len``, ``subset``, ``reader``) and hands
it a :class:`BatchTransform` that says how pixels become network inputs. The source only
slices or decodes ``uint8``/float pixels and calls the transform, so this module needs no
torch, and the network code has no branch on the type of ``X``.

A reader is a context manager: ``reader.read(rows, ahead=next_rows)`` returns the
transformed batch of ``rows`` and, for files, starts decoding ``next_rows`` in threads
while the caller computes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .files import ImageFiles, as_image_files

__all__ = [
    "ArrayBatches", "BatchReader", "BatchTransform", "FileBatches", "batch_source", "file_batches",
]


@dataclass(frozen=True)
class BatchTransform:
    """How pixels become network inputs; made by the torch layer (``skmsc.nn._preprocess``).

    Parameters
    ----------
    stack : callable
        ``stack(pixels)`` for a numpy batch of same-size images ``(b, H, W[, 3])``:
        the network-ready batch on the device.
    one : callable
        ``one(pixels)`` for one image ``(1, H, W, 3)`` of its own size: a piece on the CPU
        (run in the decoding threads).
    combine : callable
        ``combine(pieces)``: the pieces of a batch as one network-ready batch on the device.
    stack_same_size_files : bool
        Whether files that all share one size are decoded, stacked and given to ``stack``
        (exactly the array path) instead of going through ``one`` each.
    """

    stack: Callable[[np.ndarray], Any]
    one: Callable[[np.ndarray], Any]
    combine: Callable[[list], Any]
    stack_same_size_files: bool = False


class ArrayBatches:
    """Batches of an image array (``(n, H, W[, 3])``, as the user gave it).

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.data._batches import ArrayBatches, BatchTransform
    >>> source = ArrayBatches(np.zeros((5, 4, 4), dtype=np.uint8))
    >>> shape = BatchTransform(stack=lambda b: b.shape, one=None, combine=None)
    >>> with source.reader(shape) as reader:
    ...     reader.read(slice(1, 4))
    (3, 4, 4)
    >>> len(source.subset(slice(0, 2))), source.sample_shape
    (2, (4, 4))
    """

    def __init__(self, X):
        self.X = X

    def __len__(self) -> int:
        return len(self.X)

    @property
    def sample_shape(self) -> tuple:
        """Shape of one sample."""
        return tuple(self.X.shape[1:])

    def pixels_per_image(self, image_size: int) -> int:
        """Pixels of one image as the source holds it (its own size)."""
        return int(np.prod(self.X.shape[1:3]))

    def describe(self) -> str:
        """What the samples are, for a model card: ``"array of shape (n, ...), dtype ..."``."""
        return f"array of shape {tuple(self.X.shape)}, dtype {self.X.dtype}"

    def subset(self, rows) -> ArrayBatches:
        """The samples at ``rows`` (a slice keeps a view of the array)."""
        return ArrayBatches(self.X[rows])

    def reader(self, transform: BatchTransform) -> _ArrayReader:
        """A reader giving ``transform.stack(X[rows])``."""
        return _ArrayReader(self.X, transform)


class _ArrayReader:
    def __init__(self, X, transform: BatchTransform):
        self._X, self._stack = X, transform.stack

    def read(self, rows, ahead=None):
        return self._stack(self._X[rows])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None


class FileBatches:
    """Batches of image files (an :class:`~skmsc.data.files.ImageFiles`), decoded lazily.

    Files may differ in size: each goes through ``transform.one`` on its own (in the
    decoding threads) unless the transform stacks same-size files and they all share one
    size (read from the headers when the reader is made).
    """

    def __init__(self, files: ImageFiles):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    #: Files have no common shape.
    sample_shape = None

    def pixels_per_image(self, image_size: int) -> int:
        """Pixels of one image as the network sees it: files are transformed one by one."""
        return image_size**2

    def describe(self) -> str:
        """What the images are, for a model card (see ``ImageFiles.describe``)."""
        return self.files.describe()

    def subset(self, rows) -> FileBatches:
        """The files at ``rows``, with the same decoding workers."""
        return FileBatches(self.files.subset(rows))

    def reader(self, transform: BatchTransform) -> BatchReader:
        """A :class:`BatchReader` decoding and transforming batches of files."""
        files = self.files
        uniform = transform.stack_same_size_files and (
            len({files.image_size(i) for i in range(len(files))}) == 1
        )
        if uniform:
            # The same uint8 stack that the array path converts.
            return BatchReader(files.decode, lambda images: transform.stack(np.stack(images)),
                               files._workers())
        return BatchReader(lambda i: transform.one(files.decode(i)[None]), transform.combine,
                           files._workers())


def file_batches(X) -> FileBatches | None:
    """``X`` as :class:`FileBatches` if it is a collection of image files, else ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.data._batches import file_batches
    >>> len(file_batches(["a.png", "b.png"])), file_batches(np.zeros((2, 8, 8)))
    (2, None)
    """
    files = as_image_files(X)
    return None if files is None else FileBatches(files)


class BatchReader:
    """Decodes batches of images in threads, the next batch while the caller computes.

    ``read(rows, ahead=next_rows)`` returns ``combine([one(i) for i in rows])`` and starts
    decoding ``next_rows``; if the caller then asks for other rows (e.g. a smaller batch
    after running out of memory), the guess is dropped and those rows are decoded. So at
    most two batches of pixels are held. ``rows`` may be a slice or integer indices. Use it
    as a context manager.
    """

    def __init__(self, one, combine, workers: int):
        self._one, self._combine = one, combine
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="skmsc-decode") if workers else None
        )
        self._ahead = None  # (rows, futures)

    @staticmethod
    def _indices(rows) -> list[int]:
        if isinstance(rows, slice):
            return list(range(rows.start or 0, rows.stop, rows.step or 1))
        return [int(i) for i in rows]

    def read(self, rows, ahead=None):
        rows = self._indices(rows)
        if self._ahead is not None and self._ahead[0] == rows:
            futures = self._ahead[1]
        else:
            self._drop_ahead()
            futures = [self._submit(i) for i in rows]
        self._ahead = None
        ahead = [] if ahead is None else self._indices(ahead)
        if ahead and self._pool is not None:
            self._ahead = (ahead, [self._submit(i) for i in ahead])
        return self._combine([f.result() if hasattr(f, "result") else f for f in futures])

    def _submit(self, index: int):
        if self._pool is None:
            return self._one(index)
        return self._pool.submit(self._one, index)

    def _drop_ahead(self):
        if self._ahead is not None:
            for future in self._ahead[1]:
                future.cancel()
            self._ahead = None

    def close(self):
        self._drop_ahead()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def batch_source(X) -> ArrayBatches | FileBatches:
    """``X`` as a batch source: itself if it is one, files for an image collection, else an
    array.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.data._batches import batch_source
    >>> type(batch_source(np.zeros((2, 8, 8)))).__name__, type(batch_source(["a.png"])).__name__
    ('ArrayBatches', 'FileBatches')
    """
    if isinstance(X, ArrayBatches | FileBatches):
        return X
    files = file_batches(X)
    return ArrayBatches(X) if files is None else files
