"""Writers of unusual and hostile files for the reliability tests (not a test module).

benchmarks/reliability.py uses them too, so the benchmark's cases and the tests build the
same files.
"""

import gzip
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_png(path, pixels, *, significant_bits=None) -> Path:
    """A PNG of ``pixels`` (uint8 or uint16; (H, W), (H, W, 2), (H, W, 3) or (H, W, 4)).

    Written by hand because Pillow cannot write 16-bit colour PNGs; ``significant_bits``
    adds an sBIT chunk.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width, channels = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    sample = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\x00" + pixels[y].astype(sample).tobytes() for y in range(height))
    body = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    if significant_bits is not None:
        body += _chunk(b"sBIT", bytes([significant_bits] * (2 if colour == 4 else channels)))
    body += _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return Path(path)


def write_idx_header(path, magic, shape, data=b"", *, compress=True) -> Path:
    """An IDX file whose header declares ``shape`` whatever ``data`` it holds."""
    raw = struct.pack(f">{1 + len(shape)}i", magic, *shape) + data
    Path(path).write_bytes(gzip.compress(raw) if compress else raw)
    return Path(path)


class _Forged:
    """Pickles as ``call(*args)``, then ``__setstate__(state)`` if a state is given."""

    def __init__(self, call, args, state=None):
        self.call, self.args, self.state = call, args, state

    def __reduce__(self):
        return (self.call, self.args) if self.state is None else (
            self.call, self.args, self.state)


def _reconstruct():
    from numpy._core.multiarray import _reconstruct

    return _reconstruct


def cifar_pickle(data, labels=()) -> bytes:
    """A CIFAR batch file (protocol 2, as the real ones) with this ``data`` and ``labels``."""
    return pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": list(labels)},
                        protocol=2)


def pickle_reconstruct_bomb(shape=(3_200_000, 3072)) -> bytes:
    """A pickle asking numpy's ``_reconstruct`` for an array of ``shape`` (9.16 GiB for the
    default) in a few hundred bytes."""
    return cifar_pickle(_Forged(_reconstruct(), (np.ndarray, shape, b"b")))


def pickle_ndarray_bomb(shape=(3_200_000, 3072)) -> bytes:
    """A pickle calling ``numpy.ndarray(shape)`` directly."""
    return cifar_pickle(_Forged(np.ndarray, (shape, "u1")))


def pickle_reference_bomb(n_references=300_000, row_bytes=3072) -> bytes:
    """A small pickle whose ``data`` is a list of ``n_references`` references to one row:
    ``np.asarray`` of it would allocate ``n_references * row_bytes`` bytes."""
    row = np.zeros(row_bytes, np.uint8)
    return cifar_pickle([row] * n_references, [0] * n_references)


def pickle_object_array(n=100_000_000) -> bytes:
    """A pickle of an object array whose state lies about its length (numpy crashes)."""
    state = (1, (n,), np.dtype("O"), False, [1, 2])
    return cifar_pickle(_Forged(_reconstruct(), (np.ndarray, (0,), b"b"), state))


def pickle_dtype_flags(flags=63) -> bytes:
    """A pickle of a uint8 dtype whose state sets flags (object semantics) on it."""
    state = (3, "|", None, None, None, -1, -1, flags)
    return cifar_pickle(_Forged(np.dtype, ("u1", False, True), state))


def write_nan_weights(path) -> Path:
    """An EfficientNet-Lite0 state-dict file whose stem weights are NaN."""
    import torch

    from skmsc.nn.backbones import build_backbone

    model, _ = build_backbone("efficientnet_lite0", weights=None)
    state = model.state_dict()
    state["conv_stem.weight"] = torch.full_like(state["conv_stem.weight"], float("nan"))
    torch.save(state, path)
    return Path(path)


def refit_scenario(seed=0):
    """The issue's threaded scenario: training sets ``a``, ``b`` (8 features) and ``wide``
    (16), a set with a NaN that fit refuses, and an 8-feature query."""
    rng = np.random.default_rng(seed)
    fits = {"a": rng.normal(size=(300, 8)), "b": rng.normal(size=(300, 8)) + 0.5,
            "wide": rng.normal(size=(300, 16))}
    bad = fits["a"].copy()
    bad[3, 2] = np.nan
    return fits, bad, rng.normal(size=(50, 8))
