"""The cases behind ``reliability.py table``: issue #16's classes of failure, tried one by one.

Each class is a function returning ``[(name, case), ...]``; ``case(workdir)`` returns True
when skmsc handled the case (the documented behaviour, or a clear error naming the
problem), False otherwise (an exception counts as False too). Cases use only public
entry points, so the same file measures an older skmsc (``PYTHONPATH=old/checkout``):
a keyword or feature it lacks makes the case unhandled, not the script fail.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

from tests import hostile_files
from tests.fault_injection import (
    FILE_SYSTEM_CALLS,
    count_events,
    fails_at,
    saving_processes,
)

RNG = np.random.default_rng(0)
FAST = dict(backbone="efficientnet_lite0", batch_size=8, image_size=32, random_state=0)


# ------------------------------------------------------------------ helpers
def _knn(seed, **params):
    from skmsc import KNNDetector

    X = np.random.default_rng(seed).normal(size=(40, 4))
    return KNNDetector(random_state=seed, **params).fit(X)


def _same(loaded, det) -> bool:
    return (loaded.get_params() == det.get_params() and loaded.offset_ == det.offset_
            and np.array_equal(loaded.train_features_, det.train_features_)
            and np.array_equal(loaded.train_scores_, det.train_scores_))


def _whole(folder, models) -> bool:
    """Whether ``folder`` loads exactly as one of ``models``."""
    from skmsc.persistence import load

    try:
        loaded = load(folder)
    except Exception:  # noqa: BLE001 - a folder that does not load is not whole
        return False
    return any(_same(loaded, det) for det in models)


def _no_leftovers(folder: Path) -> bool:
    """No hidden ``.NAME.skmsc-*`` folder beside ``folder`` (removes any it finds, so
    that one case's leftovers do not count against the next)."""
    found = [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return not found


def _raises(call, kinds=(ValueError, TypeError), *keywords) -> bool:
    """Whether ``call()`` raises one of ``kinds`` whose message has every keyword."""
    try:
        call()
    except kinds as exc:
        return all(k.lower() in str(exc).lower() for k in keywords)
    except Exception:  # noqa: BLE001 - another exception type is not our message
        return False
    return False


def _in_thread(call, timeout=10.0, release=None):
    """``call()`` in a daemon thread: (finished, result or exception)."""
    box = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - returned
            box["value"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive() and release is not None:
        release()
    return not thread.is_alive(), box.get("value")


def _fifo(folder: Path, name: str) -> tuple[Path, callable]:
    path = folder / name
    os.mkfifo(path)

    def release():  # wakes a reader blocked on the FIFO
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    return path, release


# ------------------------------------------------------------------ 1. atomic save
def atomic_save(workdir: Path):
    old, new = _knn(1, contamination=0.05), _knn(2, n_neighbors=3)
    folder = workdir / "model"
    old.save(folder)
    n_calls = count_events(lambda: new.save(folder))
    old.save(folder)
    n_fs = count_events(lambda: new.save(folder), FILE_SYSTEM_CALLS)

    def interrupted(k, error, only):
        def case(_):
            old.save(folder)
            fails_at(lambda: new.save(folder), k, error, only)
            whole = _whole(folder, [old, new])
            clean = _no_leftovers(folder) or not isinstance(error, KeyboardInterrupt)
            return whole and clean
        return case

    def full_disk(limit):
        def case(_):
            import signal

            old.save(folder)
            previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
            failed = False
            try:
                new.save(folder)
            except OSError:  # the disk is full: the save must fail as a write does
                failed = True
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                signal.signal(signal.SIGXFSZ, previous)
            # Failed: the old model whole; large enough a limit: the new one.
            return _whole(folder, [old] if failed else [new]) and _no_leftovers(folder)
        return case

    def json_dumps_interrupt(_):  # the reproduction
        old.save(folder)
        real = json.dumps

        def interrupt(*args, **kwargs):
            raise KeyboardInterrupt

        json.dumps = interrupt
        try:
            new.save(folder)
        except KeyboardInterrupt:
            pass
        finally:
            json.dumps = real
        return _whole(folder, [old]) and _no_leftovers(folder)

    def permissions(umask):
        def case(_):
            import stat

            previous = os.umask(umask)
            try:
                target = workdir / f"perm{umask:o}"
                old.save(target)
            finally:
                os.umask(previous)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in target.iterdir()}
            return (set(modes.values()) == {0o666 & ~umask}
                    and stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask)
        return case

    def leftovers(_):
        old.save(folder)
        junk = workdir / ".model.skmsc-new-1-dead"
        junk.mkdir(exist_ok=True)
        (junk / "detector.json").write_text("{")
        try:
            new.save(folder)
            return _whole(folder, [new])
        finally:
            shutil.rmtree(junk, ignore_errors=True)

    def other_files(_):
        mine = workdir / "mine"
        mine.mkdir(exist_ok=True)
        (mine / "notes.txt").write_text("keep")
        try:
            old.save(mine)
        except ValueError:
            pass
        return (mine / "notes.txt").exists() and (mine / "notes.txt").read_text() == "keep"

    cases = [(f"interrupt at call {k}", interrupted(k, KeyboardInterrupt(), None))
             for k in range(1, n_calls + 1)]
    cases += [(f"interrupt at file-system event {k}", interrupted(k, KeyboardInterrupt(),
                                                                  FILE_SYSTEM_CALLS))
              for k in range(1, n_fs + 1)]
    cases += [(f"ENOSPC at file-system event {k}", interrupted(k, OSError(28, "full"),
                                                               FILE_SYSTEM_CALLS))
              for k in range(1, n_fs + 1)]
    cases += [(f"RLIMIT_FSIZE {limit}", full_disk(limit)) for limit in
              (0, 1, 64, 512, 1024, 2048, 4096, 8192)]
    cases += [("KeyboardInterrupt in json.dumps", json_dumps_interrupt),
              ("umask 022", permissions(0o022)), ("umask 027", permissions(0o027)),
              ("umask 077", permissions(0o077)), ("leftover temp folder", leftovers),
              ("folder with other files", other_files)]
    return cases


# ------------------------------------------------------------------ 2. chimeras
def _race_threads(folder, models):
    barrier = threading.Barrier(len(models))

    def save(det):
        barrier.wait()
        try:
            det.save(folder)
        except Exception:  # noqa: BLE001 - a clear error is allowed; the folder is checked
            pass

    threads = [threading.Thread(target=save, args=(det,)) for det in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def chimeras(workdir: Path):
    models = [_knn(1, contamination=0.05), _knn(2, n_neighbors=3)]

    def threads(i):
        def case(_):
            folder = workdir / f"t{i}"
            _race_threads(folder, models)
            return _whole(folder, models)
        return case

    def processes(i):
        def case(_):
            folder = workdir / f"p{i}"
            models[0].save(folder)
            workers = saving_processes(models, folder, 10)
            whole = True
            while any(w.is_alive() for w in workers):
                whole &= _whole(folder, models)
            for worker in workers:
                worker.join()
            return whole and _whole(folder, models)
        return case

    return ([(f"two threads, trial {i}", threads(i)) for i in range(200)]
            + [(f"two processes and a reader, trial {i}", processes(i)) for i in range(20)])


# ------------------------------------------------------------------ 3. CLI
def _cli(*args) -> int:
    import contextlib
    import io

    from skmsc.cli import main

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return main([str(a) for a in args])
        except SystemExit as exc:
            return exc.code


def _images(folder: Path, names) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        pixels = np.random.default_rng(i).integers(0, 256, size=(12, 12), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
        paths.append(str(folder / name))
    return paths


def _tree(folder: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(workdir: Path):
    from skmsc import MeanShiftedContrastiveDetector

    inputs = _images(workdir / "inputs", [f"{i}.png" for i in range(4)])
    model = workdir / "model"
    MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(inputs).save(model)

    def refused(target, overwrite=False, protect=()):
        def case(_):
            protected = [model, workdir / "inputs", *protect]
            before = [_tree(p) if p.is_dir() else p.read_bytes() for p in protected]
            code = _cli("score", model, *inputs, "--csv", target, "-q",
                        *(["--overwrite"] if overwrite else []))
            after = [_tree(p) if p.is_dir() else p.read_bytes() for p in protected]
            return code == 2 and before == after
        return case

    def existing_replaced(_):
        target = workdir / "old.csv"
        target.write_text("old\n")
        code = _cli("score", model, *inputs, "--csv", target, "-q", "--overwrite")
        return code == 0 and target.read_text().count("\n") == len(inputs) + 1

    def fit_refused(target, setup):
        def case(_):
            setup(target)
            before = _tree(target) if target.is_dir() else target.read_bytes()
            started = time.perf_counter()
            code = _cli("fit", workdir / "inputs", "-o", target, "--epochs", "0", "-q",
                        "--backbone", "efficientnet_lite0", "--image-size", "32")
            after = _tree(target) if target.is_dir() else target.read_bytes()
            return code == 2 and before == after and time.perf_counter() - started < 5
        return case

    def non_utf8(_):
        folder = workdir / "names"
        names = [f"{i}.png" for i in range(8)]
        names[4] = os.fsdecode(b"\xff\xfe.png")
        paths = _images(folder, names)
        out = workdir / "names.csv"
        code = _cli("score", model, folder, "--csv", out, "-q")
        data = out.read_bytes() if out.exists() else b""
        return code == 0 and data.count(b"\n") == 9 and os.fsencode(paths[4]) in data

    def atomic_on_failure(_):
        out = workdir / "keep.csv"
        out.write_text("old results\n")
        bad = workdir / "bad.png"
        bad.write_bytes(b"not an image")
        code = _cli("score", model, *inputs, bad, "--csv", out, "-q", "--overwrite")
        return code == 1 and out.read_text() == "old results\n"

    other = workdir / "some.png"
    other.write_bytes(Path(inputs[0]).read_bytes())

    def make_file(path):
        path.write_text("user data")

    def make_model(path):
        if not path.exists():
            shutil.copytree(model, path)

    def make_other(path):
        path.mkdir(exist_ok=True)
        (path / "notes.txt").write_text("keep")

    return [
        ("--csv MODEL/detector.json", refused(model / "detector.json")),
        ("--csv MODEL/detector.json --overwrite", refused(model / "detector.json", True)),
        ("--csv MODEL/tensors.safetensors --overwrite",
         refused(model / "tensors.safetensors", True)),
        ("--csv MODEL/new.csv", refused(model / "new.csv", True)),
        ("--csv an existing image", refused(other, protect=[other])),
        ("--csv an input image --overwrite", refused(Path(inputs[0]), True)),
        ("--csv inside an input folder", refused(workdir / "inputs" / "s.csv")),
        ("--csv an existing file --overwrite replaces it", existing_replaced),
        ("fit -o an existing file, before fitting", fit_refused(workdir / "f.txt", make_file)),
        ("fit -o a saved model, before fitting", fit_refused(workdir / "m2", make_model)),
        ("fit -o a folder of other files", fit_refused(workdir / "o", make_other)),
        ("non-UTF-8 file name after 4 of 8 rows", non_utf8),
        ("a failure leaves the old CSV whole", atomic_on_failure),
    ]


# ------------------------------------------------------------------ 4. CSV injection
FORMULA_NAMES = ["=HYPERLINK(\"evil\",\"x\").png", "=1+1.png", "+1.png", "-1.png",
                 "@SUM(A1).png", "\tTAB.png", "\rCR.png", "\uff1dfull.png", "'quote.png",
                 "=cmd|' calc'!A0.png", "-=x.png", "+=x.png"]


def csv_injection(workdir: Path):
    import csv

    from skmsc import MeanShiftedContrastiveDetector

    folder = workdir / "cells"
    _images(folder, FORMULA_NAMES)
    model = workdir / "model"
    MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(
        _images(workdir / "train", [f"{i}.png" for i in range(4)])).save(model)
    out = workdir / "cells.csv"
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        code = _cli("score", "--csv", out, "-q", "--", model, *FORMULA_NAMES)
    finally:
        os.chdir(cwd)
    if code == 0:
        with open(out, newline="") as file:  # as csv wants: a CR inside a cell stays a CR
            cells = [row[0] for row in csv.reader(file)][1:]
    else:
        cells = []
    dangerous = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")

    def escaped(i, name):
        def case(_):
            if len(cells) != len(FORMULA_NAMES):
                return False
            cell = cells[i]
            back = cell[1:] if cell.startswith("'") else cell
            return not cell.startswith(dangerous) and back == name
        return case

    return [(f"path {name!r}", escaped(i, name)) for i, name in enumerate(FORMULA_NAMES)]


# ------------------------------------------------------------------ 5. aliasing
def aliasing(workdir: Path):
    from skmsc import KNNDetector, MeanShiftedContrastiveDetector, MeanShiftedFeatures

    def case_for(kind, make):
        def case(_):
            X = np.asarray(RNG.normal(size=(40, 6)), dtype=np.float32)
            if kind == "fortran":
                X = np.asfortranarray(X)
            elif kind.startswith("memmap"):
                path = workdir / f"{kind}.dat"
                X.tofile(path)
                X = np.memmap(path, dtype=np.float32, mode="r+" if kind == "memmap" else "r",
                              shape=X.shape)
            elif kind == "strided":
                X = np.asarray(RNG.normal(size=(80, 6)), dtype=np.float32)[::2]
            estimator = make().fit(X)
            query = np.zeros((3, 6), np.float32)
            if isinstance(estimator, MeanShiftedFeatures):
                out = estimator.transform(X)
                return not np.shares_memory(out, X)
            arrays = [v for v in vars(estimator).values() if isinstance(v, np.ndarray)]
            before = estimator.score_samples(query)
            if X.flags.writeable:
                X[:] = 1000.0
            return (not any(np.shares_memory(a, X) for a in arrays)
                    and np.array_equal(estimator.score_samples(query), before))
        return case

    makers = {"detector": lambda: MeanShiftedContrastiveDetector(random_state=0),
              "KNNDetector": lambda: KNNDetector(random_state=0),
              "MeanShiftedFeatures.transform": lambda: MeanShiftedFeatures(random_state=0)}
    return [(f"{name}, {kind}", case_for(kind, make)) for name, make in makers.items()
            for kind in ("float32", "fortran", "strided", "memmap", "memmap-readonly")]


# ------------------------------------------------------------------ 6. divergence
def divergence(workdir: Path):
    from skmsc import MeanShiftedContrastiveDetector

    X = RNG.integers(0, 256, size=(12, 16, 16), dtype=np.uint8)

    def case_for(setting, named):
        def case(_):
            det = MeanShiftedContrastiveDetector(
                **{**FAST, "image_size": 16, "batch_size": 4}, weights=None, epochs=0,
                early_stopping=False).fit(X)
            before = {k: v for k, v in vars(det).items() if k.endswith("_")}
            det.set_params(epochs=3, **setting)
            try:
                det.fit(X)
            except ValueError as exc:
                after = {k: v for k, v in vars(det).items() if k.endswith("_")}
                return (named in str(exc) and after.keys() == before.keys()
                        and all(after[k] is v for k, v in before.items()))
            except Exception:  # noqa: BLE001 - not a clear error
                return False
            finite = [np.all(np.isfinite(np.asarray(getattr(det, a), dtype=float)))
                      for a in ("loss_curve_", "train_features_", "center_", "offset_")]
            return all(finite)
        return case

    settings = [(dict(learning_rate=v), "learning_rate") for v in (1e2, 1e6, 1e10)]
    settings += [(dict(weight_decay=v), "weight_decay") for v in (1e10, 1e20, 1e30)]
    settings += [(dict(temperature=v), "temperature") for v in (1e-10, 1e-20, 1e-30)]

    def nan_weights(_):
        path = hostile_files.write_nan_weights(workdir / "nan.pth")
        det = MeanShiftedContrastiveDetector(**FAST, weights=str(path), epochs=0,
                                             precision="float32")
        return _raises(lambda: det.fit(X), (ValueError,), "weights")

    return [(f"{list(s)[0]}={list(s.values())[0]:g}", case_for(s, n)) for s, n in settings] + [
        ("NaN in the weights file", nan_weights)]


# ------------------------------------------------------------------ 7. pixel depth
def pixel_depth(workdir: Path):
    from PIL import Image

    from skmsc.data.files import ImageFiles, decode_image

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)

    def scaled(path, data, white, bit_depth=None):
        def case(_):
            if bit_depth is None:
                pixels = decode_image(path)
            else:
                pixels = ImageFiles([path], bit_depth=bit_depth).decode(0)
            channel = pixels[..., 0].astype(np.float64)
            top = 255.0 if pixels.dtype == np.uint8 else 1.0
            expected = data / white * top
            # 8 bits: within one level (Pillow keeps the high byte of 16-bit colour).
            tolerance = 1.0 if pixels.dtype == np.uint8 else 1e-6
            return (np.abs(channel - expected).max() <= tolerance
                    and np.mean(pixels >= top) < 0.01)
        return case

    def refused(path, *keywords):
        return lambda _: _raises(lambda: decode_image(path), (ValueError,), *keywords)

    def first_frame(name):
        def case(_):
            frames = [Image.new("L", (8, 8), level) for level in (10, 120, 240)]
            frames[0].save(workdir / name, save_all=True, append_images=frames[1:])
            return (np.all(decode_image(workdir / name) == 10)
                    and "first frame" in (decode_image.__doc__ or ""))
        return case

    files = {}
    files["gray16.png"] = hostile_files.write_png(workdir / "gray16.png", ramp)
    Image.fromarray(ramp).save(workdir / "gray16.tif")
    for bits in (10, 12, 14):
        data = (ramp >> (16 - bits)).astype(np.uint16)
        files[f"gray{bits}"] = (hostile_files.write_png(workdir / f"gray{bits}.png", data),
                                data)
    rgb = np.stack([ramp, ramp[::-1], ramp.T], axis=-1)
    hostile_files.write_png(workdir / "rgb16.png", rgb)
    values = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(values).save(workdir / "float.tif")
    Image.fromarray(values * 255).save(workdir / "float255.tif")
    Image.fromarray(np.where(values > 0.5, np.nan, values).astype(np.float32)).save(
        workdir / "nan.tif")
    Image.fromarray(ramp.astype(np.int32) - 30000).save(workdir / "signed.tif")
    Image.fromarray(ramp.astype(np.int32)).save(workdir / "int32.tif")
    cases = [
        ("16-bit grayscale PNG", scaled(files["gray16.png"], ramp, 65535)),
        ("16-bit grayscale TIFF", scaled(workdir / "gray16.tif", ramp, 65535)),
        ("16-bit RGB PNG", scaled(workdir / "rgb16.png", ramp, 65535)),
        ("float TIFF in [0, 1]", scaled(workdir / "float.tif", values, 1.0)),
        ("32-bit integer TIFF within 16 bits", scaled(workdir / "int32.tif", ramp, 65535)),
        ("float TIFF in [0, 255] refused", refused(workdir / "float255.tif", "[0, 1]")),
        ("float TIFF with NaN refused", refused(workdir / "nan.tif", "NaN")),
        ("signed 32-bit TIFF refused", refused(workdir / "signed.tif", "range")),
        ("animated GIF: first frame, documented", first_frame("anim.gif")),
        ("multi-page TIFF: first frame, documented", first_frame("pages.tif")),
    ]
    for bits in (10, 12, 14):
        path, data = files[f"gray{bits}"]
        cases.append((f"{bits}-bit data in a 16-bit PNG, bit_depth={bits}",
                      scaled(path, data, 2**bits - 1, bit_depth=bits)))
        cases.append((f"{bits}-bit data in a 16-bit PNG, full range, not saturated",
                      scaled(path, data, 65535)))
    return cases


# ------------------------------------------------------------------ 8. malformed input
def malformed_input(workdir: Path):
    from skmsc import KNNDetector, MeanShiftedContrastiveDetector

    features = RNG.normal(size=(30, 4))

    def masked():
        X = np.ma.masked_array(features.copy(), mask=np.zeros_like(features, bool))
        X[3, 1] = np.ma.masked
        X.data[3, 1] = 1e30
        return X

    def fit(X, det=None):
        return lambda _: _raises(lambda: (det or MeanShiftedContrastiveDetector()).fit(X),
                                 (ValueError, TypeError), *(["masked"]
                                                            if isinstance(X, np.ma.MaskedArray)
                                                            else []))

    def parameter(name):
        return lambda _: _raises(
            lambda: MeanShiftedContrastiveDetector(**{name: True}).fit(features),
            (ValueError, TypeError), name)

    def cifar_labels(labels):
        def case(_):
            from skmsc.datasets import load_cifar10

            folder = workdir / f"cifar{abs(hash(str(labels)))}" / "cifar-10-batches-py"
            folder.mkdir(parents=True)
            names = [f"c{i}".encode() for i in range(10)]
            (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, 2))
            (folder / "test_batch").write_bytes(
                hostile_files.cifar_pickle(np.zeros((2, 3072), np.uint8), labels))
            return _raises(lambda: load_cifar10(folder.parent, "test"), (ValueError,),
                           "labels", str(folder / "test_batch"))
        return case

    longdouble = np.dtype(np.longdouble).itemsize > 8
    cases = [
        ("masked array, fit", fit(masked())),
        ("masked array, KNNDetector", fit(masked(), KNNDetector())),
        ("datetime64 array", fit(np.arange(40).reshape(10, 4).astype("datetime64[s]"))),
        ("timedelta64 array", fit(np.arange(40).reshape(10, 4).astype("timedelta64[s]"))),
        ("CIFAR labels 0.7 / 9.9", cifar_labels([0.7, 9.9])),
        ("CIFAR labels True / False", cifar_labels([True, False])),
        ("CIFAR labels 10", cifar_labels([1, 10])),
    ]
    if longdouble:
        cases.append(("float128 features", fit(features.astype(np.longdouble))))
        cases.append(("float128 images", fit((RNG.random((4, 16, 16))).astype(np.longdouble),
                                             MeanShiftedContrastiveDetector(**FAST, epochs=0))))
    cases += [(f"{name}=True", parameter(name)) for name in
              ("n_neighbors", "frozen_stages", "epochs", "batch_size", "image_size",
               "learning_rate")]
    return cases


# ------------------------------------------------------------------ 9. load
def load_validation(workdir: Path):
    from safetensors.numpy import load_file, save_file

    import skmsc.persistence as persistence
    from skmsc import MeanShiftedContrastiveDetector

    X = RNG.integers(0, 256, size=(10, 16, 16), dtype=np.uint8)
    image_model = MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(X).save(
        workdir / "images")
    feature_model = MeanShiftedContrastiveDetector(random_state=0).fit(
        RNG.normal(size=(30, 4))).save(workdir / "features")

    def forged(source, edit):
        import hashlib

        folder = workdir / f"forged-{time.perf_counter_ns()}"
        shutil.copytree(source, folder)
        document = json.loads((folder / persistence.JSON_NAME).read_text())
        tensors = load_file(str(folder / persistence.TENSORS_NAME))
        edit(document, tensors)
        hashing = getattr(persistence, "document_sha256", None)
        metadata = None if hashing is None else {"skmsc_document_sha256": hashing(document)}
        save_file(tensors, str(folder / persistence.TENSORS_NAME), metadata=metadata)
        document["tensors_sha256"] = hashlib.sha256(
            (folder / persistence.TENSORS_NAME).read_bytes()).hexdigest()
        (folder / persistence.JSON_NAME).write_text(json.dumps(document))
        return folder

    def field(source, name, value):
        def edit(document, tensors):
            document["fitted"][name] = value

        return lambda _: _raises(lambda: persistence.load(forged(source, edit)),
                                 (ValueError,), name)

    def tensor(name):
        def edit(document, tensors):
            tensors[name] = tensors[name].copy()
            tensors[name].flat[0] = np.nan

        return lambda _: _raises(lambda: persistence.load(forged(image_model, edit)),
                                 (ValueError,), name)

    def json_text(make, *keywords):
        def case(_):
            folder = workdir / f"text-{time.perf_counter_ns()}"
            shutil.copytree(feature_model, folder)
            path = folder / persistence.JSON_NAME
            path.write_text(make(path.read_text()))
            return _raises(lambda: persistence.load(folder), (ValueError,), *keywords)
        return case

    def nan_offset(text):
        offset = json.dumps(json.loads(text)["fitted"]["offset_"])
        return text.replace(offset, "NaN", 1)

    cases = [(f"image_size_={v!r}", field(image_model, "image_size_", v))
             for v in ("abc", -5, 0, 3.7, 1e308, 40000)]
    cases += [(f"device_={v!r}", field(image_model, "device_", v)) for v in ("meta", "banana")]
    cases += [
        ("n_features_in_ not the features'", field(feature_model, "n_features_in_", 7)),
        ("versions_ a string", field(feature_model, "versions_", "1.0")),
        ("versions_ a list", field(feature_model, "versions_", ["skmsc"])),
        ("feature_names_in_ of another length", field(feature_model, "feature_names_in_",
                                                      ["a", "b"])),
        ("input_shape_ 'abc'", field(feature_model, "input_shape_", "abc")),
        ("index_seed -1", field(feature_model, "index_seed", -1)),
        ("loss_curve_ ['a']", field(feature_model, "loss_curve_", ["a"])),
        ("best_epoch_ 3", field(feature_model, "best_epoch_", 3)),
        ("offset_ NaN in the JSON", json_text(nan_offset, "NaN")),
        ("100,000-deep JSON", json_text(lambda t: "[" * 100_000 + "]" * 100_000, "deep")),
        ("65 MB JSON", json_text(lambda t: t + " " * (65 * 2**20), "bytes")),
    ]
    cases += [(f"NaN in {name}", tensor(name)) for name in
              ("train_features_", "center_", "train_scores_",
               "encoder.backbone.conv_stem.weight")]
    return cases


# ------------------------------------------------------------------ 10. dataset bombs
def _peak_bytes(call) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    try:
        try:
            call()
            error = None
        except Exception as exc:  # noqa: BLE001 - returned
            error = exc
        return tracemalloc.get_traced_memory()[1], error
    finally:
        tracemalloc.stop()


def dataset_bombs(workdir: Path):
    from skmsc.datasets import load_cifar10, load_fashion_mnist

    limit = 64 * 2**20

    def cifar(name, blob):
        def case(_):
            folder = workdir / name / "cifar-10-batches-py"
            folder.mkdir(parents=True)
            names = [f"c{i}".encode() for i in range(10)]
            (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, 2))
            (folder / "test_batch").write_bytes(blob)
            peak, error = _peak_bytes(lambda: load_cifar10(folder.parent, "test"))
            return isinstance(error, ValueError | pickle.UnpicklingError) and peak < limit
        return case

    def fmnist(name, write):
        def case(_):
            root = workdir / name
            root.mkdir()
            images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
            hostile_files.write_idx_header(root / "t10k-images-idx3-ubyte.gz", 2051,
                                           images.shape, images.tobytes())
            hostile_files.write_idx_header(root / "t10k-labels-idx1-ubyte.gz", 2049, (3,),
                                           bytes([1, 2, 3]))
            path = write(root)
            peak, error = _peak_bytes(lambda: load_fashion_mnist("test", root=root))
            return (isinstance(error, ValueError) and str(path) in str(error)
                    and peak < limit)
        return case

    rng = np.random.default_rng(0)

    def inflating(root):  # 1 image declared, 512 MiB of zeros after it, ~0.5 MB on disk
        path = root / "t10k-images-idx3-ubyte.gz"
        with gzip.open(path, "wb", compresslevel=9) as out:
            out.write(np.array([2051, 1, 28, 28], ">i4").tobytes())
            chunk = bytes(2**24)
            for _ in range(32):
                out.write(chunk)
        return path

    def oversized(root):
        return hostile_files.write_idx_header(root / "t10k-images-idx3-ubyte.gz", 2051,
                                              (2_000_000, 28, 28))

    def zero_dims(root):
        return hostile_files.write_idx_header(root / "t10k-images-idx3-ubyte.gz", 2051,
                                              (0, 28, 28))

    def negative_dims(root):
        return hostile_files.write_idx_header(root / "t10k-images-idx3-ubyte.gz", 2051,
                                              (-3, 28, 28))

    def label_out_of_range(root):
        return hostile_files.write_idx_header(root / "t10k-labels-idx1-ubyte.gz", 2049, (3,),
                                              bytes([1, 2, 200]))

    return [
        ("176-byte pickle: _reconstruct of 9.16 GiB", cifar(
            "reconstruct", hostile_files.pickle_reconstruct_bomb())),
        ("pickle: ndarray((3.2M, 3072))", cifar("ndarray", hostile_files.pickle_ndarray_bomb())),
        ("pickle of 100k references to one row", cifar(
            "references", hostile_files.pickle_reference_bomb(100_000))),
        ("pickle: dtype with flags", cifar("flags", hostile_files.pickle_dtype_flags())),
        ("IDX .gz: 1 image declared, 512 MiB inflating", fmnist("inflating", inflating)),
        ("IDX .gz: 2M images declared in a small file", fmnist("oversized", oversized)),
        ("IDX dimension 0", fmnist("zero", zero_dims)),
        ("IDX dimension -3", fmnist("negative", negative_dims)),
        ("IDX label 200 of 10 classes", fmnist("labels", label_out_of_range)),
    ]


def dataset_crash(workdir: Path):
    """The one case that crashed the interpreter (run in a process of its own)."""
    return [("pickle: object array whose state lies about its length",
             dataset_bombs_case_object)]


def dataset_bombs_case_object(workdir: Path) -> bool:
    from skmsc.datasets import load_cifar10

    folder = workdir / "object" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"c{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, 2))
    (folder / "test_batch").write_bytes(hostile_files.pickle_object_array())
    return _raises(lambda: load_cifar10(folder.parent, "test"),
                   (ValueError, pickle.UnpicklingError))


# ------------------------------------------------------------------ 11. decoding
def _hwm_ratio(code: str, path: Path) -> float:
    """Peak RSS (VmHWM after a reset) of ``code`` in a fresh process, over decoded bytes."""
    program = f"""
import threading
from skmsc.data.files import decode_image
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
path = {str(path)!r}
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
{code}
print((status("VmHWM:") - before) / nbytes)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=600)
    return float(done.stdout) if done.returncode == 0 else float("inf")


def decoding(workdir: Path):
    from PIL import Image

    from skmsc.data.files import ImageFiles, decode_image

    def fifo_case(name, call_for):
        def case(_):
            path, release = _fifo(workdir, name)
            finished, value = _in_thread(lambda: call_for(path), release=release)
            return finished and isinstance(value, Exception) and "FIFO" in str(value)
        return case

    def cli_fifo(path):
        from skmsc import MeanShiftedContrastiveDetector

        model = workdir / "model"
        if not model.exists():
            MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(
                _images(workdir / "train", [f"{i}.png" for i in range(4)])).save(model)
        import contextlib
        import io

        from skmsc.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["score", str(model), str(path), "-q"])
        return ValueError(err.getvalue()) if code == 1 else code

    def weights_fifo(path):
        from skmsc import MeanShiftedContrastiveDetector

        X = RNG.integers(0, 256, size=(4, 16, 16), dtype=np.uint8)
        return MeanShiftedContrastiveDetector(**FAST, epochs=0, weights=str(path)).fit(X)

    def device_file(_):
        finished, value = _in_thread(lambda: decode_image("/dev/zero"))
        return finished and isinstance(value, ValueError)

    def folder(_):
        return _raises(lambda: decode_image(workdir), (ValueError,))

    size = 4000
    large = workdir / "large.png"
    pixels = (np.indices((size, size)).sum(axis=0) % 251).astype(np.uint8)
    Image.fromarray(np.stack([pixels, pixels.T, 255 - pixels], axis=-1)).save(
        large, compress_level=1)

    def one_image(_):
        ratio = _hwm_ratio("out = decode_image(path)\nnbytes = out.nbytes", large)
        return ratio < 3.0

    def two_threads(_):
        code = ("outs = []\n"
                "threads = [threading.Thread(target=lambda: outs.append(decode_image(path))) "
                "for _ in range(2)]\n"
                "[t.start() for t in threads]\n[t.join() for t in threads]\n"
                "nbytes = sum(o.nbytes for o in outs)")
        return _hwm_ratio(code, large) < 3.0

    return [
        ("FIFO to decode_image", fifo_case("a.png", decode_image)),
        ("FIFO to ImageFiles.image_size", fifo_case("b.png",
                                                    lambda p: ImageFiles([p]).image_size(0))),
        ("FIFO to skmsc score", fifo_case("c.png", cli_fifo)),
        ("FIFO as weights", fifo_case("w.pth", weights_fifo)),
        ("/dev/zero as an image", device_file),
        ("a folder as an image", folder),
        (f"{size}x{size} PNG: decode peak under 3x its pixels", one_image),
        (f"two {size}x{size} PNGs in two threads: peak under 3x", two_threads),
    ]


# ------------------------------------------------------------------ 12. concurrency
def concurrency(workdir: Path):
    """Each scoring call made while another thread refits is one case."""
    from skmsc import MeanShiftedContrastiveDetector

    fits, bad, query = hostile_files.refit_scenario()
    expected = [MeanShiftedContrastiveDetector(random_state=0).fit(fits[k]).decision_function(
        query) for k in ("a", "b")]
    det = MeanShiftedContrastiveDetector(random_state=0).fit(fits["a"])
    outcomes, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                result = det.decision_function(query)
                outcomes.append(any(np.array_equal(result, e) for e in expected))
            except ValueError as exc:  # the 16-feature model refusing 8 features: clear
                outcomes.append("features" in str(exc))
            except Exception:  # noqa: BLE001 - NotFittedError, AttributeError, torch errors
                outcomes.append(False)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        for key in ("b", "a", "wide", "a"):
            try:
                det.fit(bad)
            except ValueError:
                pass
            det.fit(fits[key])
    stop.set()
    reader.join()
    return [(f"scoring call {i}", lambda _, ok=ok: ok) for i, ok in enumerate(outcomes)]


# ------------------------------------------------------------------ 13. clear errors
def clear_errors(workdir: Path):
    import torch

    from skmsc import KNNDetector, MeanShiftedContrastiveDetector
    from skmsc.data.files import ImageFiles

    features = RNG.normal(size=(30, 4))
    images = RNG.integers(0, 256, size=(6, 16, 16), dtype=np.uint8)
    paths = _images(workdir / "imgs", [f"{i}.png" for i in range(4)])

    def objects(items):
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array

    def fit(X, *keywords, det=None):
        return lambda _: _raises(lambda: (det or MeanShiftedContrastiveDetector(
            **FAST, epochs=0)).fit(X), (ValueError, TypeError), *keywords)

    def param(*keywords, **params):
        return lambda _: _raises(
            lambda: MeanShiftedContrastiveDetector(**{**FAST, **params}, epochs=0).fit(images),
            (ValueError, TypeError, FileNotFoundError), *keywords)

    def workers(_):
        import contextlib
        import io

        from skmsc.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                code = main(["score", "model", paths[0], "--workers", "-1"])
            except SystemExit as exc:
                code = exc.code
        return code == 2 and "--workers" in err.getvalue()

    fitted = KNNDetector().fit(features)

    def neighbours(k, kinds, *keywords, X=features[:2]):
        return lambda _: _raises(lambda: fitted.kneighbors(X, n_neighbors=k), kinds,
                                 "n_neighbors", *keywords)

    folder = workdir / "weights-folder"
    folder.mkdir()
    return [
        ("kneighbors n_neighbors=0", neighbours(0, (ValueError,), "at least 1")),
        ("kneighbors n_neighbors=-1", neighbours(-1, (ValueError,), "at least 1")),
        ("kneighbors n_neighbors=True", neighbours(True, (TypeError,), "integer")),
        ("kneighbors n_neighbors=31 of 30", neighbours(31, (ValueError,), "30 training")),
        ("kneighbors() n_neighbors=30, self left out", neighbours(30, (ValueError,), "29",
                                                                 X=None)),
        ("torch bfloat16 tensor", fit(torch.from_numpy(features).to(torch.bfloat16),
                                      "bfloat16", "float()", det=KNNDetector())),
        ("torch tensor requiring grad", fit(torch.from_numpy(features).requires_grad_(True),
                                            "detach", det=KNNDetector())),
        ("1-D object array of images", fit(objects(list(images)), "np.stack")),
        ("paths as bytes", fit([os.fsencode(p) for p in paths], "fsdecode")),
        ("paths as bytes to ImageFiles", lambda _: _raises(
            lambda: ImageFiles([os.fsencode(p) for p in paths]), (TypeError,), "fsdecode")),
        ('device="meta"', param("device='meta'", device="meta")),
        ('device="xla"', param("device='xla'", device="xla")),
        ('weights=""', param("empty", weights="")),
        ("weights=a folder", param("folder", weights=str(folder))),
        ("--workers -1", workers),
    ]


#: The classes of issue #16, in its order: (number, name, case list function).
CLASSES = [
    (1, "atomic save", atomic_save),
    (2, "no chimeras", chimeras),
    (3, "CLI never destroys input", cli),
    (4, "CSV formula injection", csv_injection),
    (5, "no aliasing of X", aliasing),
    (6, "divergence is an error", divergence),
    (7, "pixel depth, multi-frame", pixel_depth),
    (8, "malformed input", malformed_input),
    (9, "load validates every field", load_validation),
    (10, "dataset memory bombs", dataset_bombs),
    (10, "dataset memory bombs", dataset_crash),
    (11, "decoding: FIFOs, memory", decoding),
    (12, "concurrency", concurrency),
    (13, "clear errors", clear_errors),
]
