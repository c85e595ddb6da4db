"""Fuzzing every class of issue #16 with Hypothesis: random faults, files, inputs and timing.

Each test states an invariant that must hold for every case Hypothesis draws (seeded with
``derandomize``, so a run is reproducible); the example-based tests of each class live in
test_atomic_save, test_cli_outputs, test_fit_integrity, test_pixel_depth,
test_malformed_inputs, test_load_validation and test_dataset_bombs.
``benchmarks/reliability.py table`` counts cases tried and handled per class.
"""

import copy
import csv
import io
import pickle
import shutil
import threading
import time
import tracemalloc

import numpy as np
import pytest
import torch
from conftest import FAST
from fault_injection import count_events, fails_at
from hostile_files import cifar_pickle, write_idx_header, write_png
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from saved_models import rebind

from skmsc import DivergenceError, KNNDetector, MeanShiftedContrastiveDetector
from skmsc.cli import main, spreadsheet_safe
from skmsc.data.files import decode_image
from skmsc.datasets import load_cifar10, load_fashion_mnist
from skmsc.persistence import JSON_NAME, TENSORS_NAME, load

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
RNG = np.random.default_rng(0)


def _knn(seed, **params):
    return KNNDetector(random_state=seed, **params).fit(
        np.random.default_rng(seed).normal(size=(40, 4)))


MODELS = (_knn(1, contamination=0.05), _knn(2, n_neighbors=3))


def _same(loaded, det) -> bool:
    return (loaded.get_params() == det.get_params() and loaded.offset_ == det.offset_
            and np.array_equal(loaded.train_features_, det.train_features_))


def _loads_as_one_of(folder, models) -> int:
    loaded = load(folder)
    matches = [i for i, det in enumerate(models) if _same(loaded, det)]
    assert matches, "a mix of two saves"
    return matches[0]


# ------------------------------------------------------------------ 1. atomic save
@FUZZ
@given(fraction=st.floats(0, 1))
def test_1_an_interrupt_at_any_call_of_a_save_leaves_one_whole_model(tmp_path_factory,
                                                                     fraction):
    old, new = MODELS
    folder = old.save(tmp_path_factory.mktemp("save") / "model")
    n_calls = count_events(lambda: new.save(folder))  # every Python and C call
    old.save(folder)
    fails_at(lambda: new.save(folder), max(1, int(fraction * n_calls)), KeyboardInterrupt())
    _loads_as_one_of(folder, MODELS)
    assert [p.name for p in folder.parent.iterdir()] == ["model"]


# ------------------------------------------------------------------ 2. no chimeras
@FUZZ
@given(delays=st.lists(st.floats(0, 0.004), min_size=3, max_size=3))
def test_2_saves_racing_in_threads_end_in_one_whole_model(tmp_path_factory, delays):
    folder = tmp_path_factory.mktemp("race") / "model"
    errors = []

    def save(det, delay):
        time.sleep(delay)
        try:
            det.save(folder)
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(det, delay))
               for det, delay in zip([*MODELS, MODELS[0]], delays, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _loads_as_one_of(folder, MODELS)


# ------------------------------------------------------------------ 3. CLI outputs
@pytest.fixture(scope="module")
def cli_setup(image_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-fuzz")
    model = MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(
        image_folder.normal[:6]).save(root / "model")
    inputs = root / "inputs"
    inputs.mkdir()
    for path in image_folder.test[:3]:
        shutil.copy(path, inputs)
    return root, model, inputs


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@FUZZ
@given(target=st.sampled_from(["model-json", "model-tensors", "model-new", "input-image",
                               "input-folder-new", "existing", "new", "folder"]),
       overwrite=st.booleans())
def test_3_the_cli_never_writes_over_its_model_or_its_images(cli_setup, capsys, target,
                                                             overwrite):
    root, model, inputs = cli_setup
    images = sorted(str(p) for p in inputs.iterdir() if p.suffix == ".png")
    existing = root / "existing.csv"
    existing.write_text("old\n")
    path = {"model-json": model / JSON_NAME, "model-tensors": model / TENSORS_NAME,
            "model-new": model / "s.csv", "input-image": images[0],
            "input-folder-new": inputs / "s.csv", "existing": existing,
            "new": root / "new.csv", "folder": root}[target]
    before_model, before_inputs = _tree(model), _tree(inputs)
    code = main(["score", str(model), *images, "--csv", str(path), "-q",
                 *(["--overwrite"] if overwrite else [])])
    capsys.readouterr()
    assert _tree(model) == before_model
    assert {k: v for k, v in _tree(inputs).items() if k.endswith(".png")} == {
        k: v for k, v in before_inputs.items() if k.endswith(".png")}
    allowed = target == "new" or (overwrite and target in ("existing", "input-folder-new"))
    assert code == (0 if allowed else 2)
    if code == 0:
        assert len(list(csv.reader(io.StringIO(open(path).read())))) == len(images) + 1
    elif target == "existing":
        assert existing.read_text() == "old\n"
    for leftover in (root / "new.csv", inputs / "s.csv"):
        leftover.unlink(missing_ok=True)


# ------------------------------------------------------------------ 4. CSV injection
@settings(max_examples=300, deadline=None, derandomize=True)
@given(cell=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
       | st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", "＝"]).flatmap(
           lambda head: st.text(max_size=8).map(lambda tail: head + tail)))
def test_4_escaped_cells_never_start_a_formula_and_round_trip(cell):
    escaped = spreadsheet_safe(cell)
    formula = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
    assert not escaped.startswith(formula)
    assert (escaped[1:] if escaped.startswith("'") else escaped) == cell
    buffer = io.StringIO()
    csv.writer(buffer).writerow([escaped, "-1.0"])
    assert next(csv.reader(io.StringIO(buffer.getvalue())))[0] == escaped


# ------------------------------------------------------------------ 5. aliasing
@FUZZ
@given(dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int32]),
       order=st.sampled_from(["C", "F"]), step=st.integers(1, 3),
       reverse=st.booleans(), read_only=st.booleans(),
       knn=st.booleans())
def test_5_no_fitted_array_is_a_view_of_the_callers_data(dtype, order, step, reverse,
                                                         read_only, knn):
    base = np.asarray(RNG.normal(size=(90, 5)) * 10, dtype=dtype, order=order)
    X = base[::step][::-1] if reverse else base[::step]
    X.flags.writeable = not read_only
    det = (KNNDetector() if knn else MeanShiftedContrastiveDetector()).fit(X)
    for name, value in vars(det).items():
        if isinstance(value, np.ndarray):
            assert not np.shares_memory(value, base), name


# ------------------------------------------------------------------ 6. divergence
@settings(max_examples=12, deadline=None, derandomize=True)
@given(log_lr=st.floats(-6, 12), log_wd=st.floats(-6, 32), log_temperature=st.floats(-32, 0))
def test_6_a_fit_is_finite_or_a_divergence_error_that_changes_nothing(
    log_lr, log_wd, log_temperature
):
    X = RNG.integers(0, 256, size=(8, 16, 16), dtype=np.uint8)
    det = MeanShiftedContrastiveDetector(**{**FAST, "image_size": 16, "batch_size": 4},
                                         weights=None, epochs=0).fit(X)
    before = dict(det.__dict__)
    det.set_params(epochs=2, learning_rate=10.0**log_lr, weight_decay=10.0**log_wd,
                   temperature=10.0**log_temperature)
    try:
        det.fit(X)
    except DivergenceError as exc:
        assert "NaN or infinite. Likely cause:" in str(exc)
        assert all(det.__dict__[k] is v for k, v in before.items() if k.endswith("_"))
        return
    for name in ("loss_curve_", "train_features_", "train_scores_", "center_"):
        assert np.all(np.isfinite(getattr(det, name))), name
    assert np.isfinite(det.offset_)


# ------------------------------------------------------------------ 7. pixel depth
@FUZZ
@given(high=st.integers(1, 65535), bit_depth=st.one_of(st.none(), st.integers(1, 16)),
       kind=st.sampled_from(["png", "tif"]), seed=st.integers(0, 100))
def test_7_deep_images_decode_exactly_scaled_or_are_refused(tmp_path_factory, high,
                                                            bit_depth, kind, seed):
    data = np.random.default_rng(seed).integers(0, high + 1, size=(6, 7)).astype(np.uint16)
    path = tmp_path_factory.mktemp("deep") / f"x.{kind}"
    if kind == "png":
        write_png(path, data)
    else:
        Image.fromarray(data).save(path)
    white = 65535 if bit_depth is None else 2**bit_depth - 1
    try:
        pixels = decode_image(path, bit_depth=bit_depth)
    except ValueError as exc:
        assert data.max() > white and "outside" in str(exc)
        return
    assert data.max() <= white and pixels.dtype == np.float32
    np.testing.assert_allclose(pixels[..., 0] * white, data, rtol=0, atol=1e-3)


@FUZZ
@given(cut=st.floats(0, 1), flips=st.lists(st.integers(0, 10**6), max_size=4),
       kind=st.sampled_from(["png", "jpg", "tif", "gif", "bmp"]))
def test_11_damaged_image_files_decode_or_raise_a_value_error(tmp_path_factory, cut, flips,
                                                              kind):
    folder = tmp_path_factory.mktemp("damaged")
    Image.fromarray(RNG.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)).save(
        folder / f"ok.{kind}")
    blob = bytearray((folder / f"ok.{kind}").read_bytes())
    for position in flips:
        blob[position % len(blob)] ^= 0xFF
    (folder / f"bad.{kind}").write_bytes(bytes(blob[: max(1, int(cut * len(blob)))]))
    try:
        pixels = decode_image(folder / f"bad.{kind}")
    except ValueError as exc:
        assert str(exc).startswith("cannot decode image file")
        return
    assert pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.dtype == np.uint8 or (pixels.min() >= 0 and pixels.max() <= 1)


# ------------------------------------------------------------------ 8 and 13. inputs
def _object_array(items):
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


_INPUTS = st.sampled_from([
    lambda: np.ma.masked_array(RNG.normal(size=(20, 3)), mask=RNG.random((20, 3)) < 0.1),
    lambda: np.arange(60).reshape(20, 3).astype("datetime64[D]"),
    lambda: np.arange(60).reshape(20, 3).astype("timedelta64[s]"),
    lambda: RNG.normal(size=(20, 3)).astype(np.longdouble),
    lambda: torch.randn(20, 3, dtype=torch.bfloat16),
    lambda: torch.randn(20, 3, requires_grad=True),
    lambda: np.array([b"a.png", b"b.png"], dtype=object),
    lambda: [b"a.png", b"b.png"],
    lambda: _object_array([np.zeros((4, 4)), np.zeros((4, 4))]),
    lambda: RNG.normal(size=(20, 3)) * 1e200,
    lambda: RNG.normal(size=(20, 3)).astype(np.complex64),
    lambda: [[1, 2], [3]],
    lambda: "X",
])


@FUZZ
@given(make=_INPUTS, knn=st.booleans())
def test_8_13_malformed_inputs_get_our_message(make, knn):
    X = make()
    before = copy.deepcopy(X) if not isinstance(X, torch.Tensor) else X.detach().clone()
    det = KNNDetector() if knn else MeanShiftedContrastiveDetector()
    try:
        det.fit(X)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        assert message.startswith(("X ", "Complex", "Expected", "could not convert")) or (
            "Pass" in message or "pass" in message), message
        assert "inhomogeneous" not in message and "ScalarType" not in message, message
    else:
        assert np.isfinite(det.offset_) and not isinstance(X, np.ma.MaskedArray)
    if isinstance(X, np.ndarray) and X.dtype.kind not in "O":
        np.testing.assert_array_equal(np.asarray(X), np.asarray(before))


@FUZZ
@given(device=st.text(max_size=8) | st.sampled_from(["meta", "xla", "cpu", "cuda:9", "mps",
                                                      "vulkan", "cpu:0", "hpu"]))
def test_13_any_device_string_is_used_or_refused_by_name(device):
    det = MeanShiftedContrastiveDetector(**FAST, epochs=0, device=device)
    try:
        det.fit(RNG.integers(0, 256, size=(4, 16, 16), dtype=np.uint8))
    except ValueError as exc:
        assert f"device={device!r}" in str(exc)
    else:
        assert det.device_.type == "cpu"


# ------------------------------------------------------------------ 9. load
@pytest.fixture(scope="module")
def saved_feature_model(tmp_path_factory):
    det = MeanShiftedContrastiveDetector(random_state=0).fit(RNG.normal(size=(25, 3)))
    return det, det.save(tmp_path_factory.mktemp("load") / "model")


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False,
                                                                        allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=8)


@FUZZ
@given(field=st.sampled_from(["image_size_", "device_", "n_features_in_", "versions_",
                              "offset_", "index_seed", "knn_algorithm_", "input_shape_",
                              "loss_curve_", "validation_scores_", "best_epoch_", "backbone",
                              "feature_names_in_"]),
       value=_JSON_VALUES)
def test_9_a_forged_field_loads_to_the_same_scores_or_is_refused(saved_feature_model,
                                                                 tmp_path_factory, field,
                                                                 value):
    det, original = saved_feature_model
    folder = tmp_path_factory.mktemp("forged") / "model"
    shutil.copytree(original, folder)

    def edit(document, tensors):
        document["fitted"][field] = value

    rebind(folder, edit)
    query = RNG.normal(size=(7, 3))
    try:
        loaded = load(folder)
    except ValueError as exc:
        assert str(exc)
        return
    np.testing.assert_array_equal(loaded.score_samples(query), det.score_samples(query))
    np.testing.assert_array_equal(loaded.decision_function(query),
                                  det.decision_function(query))


@FUZZ
@given(which=st.sampled_from([JSON_NAME, TENSORS_NAME]), position=st.integers(0, 10**6),
       truncate=st.booleans())
def test_9_a_damaged_file_is_refused(saved_feature_model, tmp_path_factory, which, position,
                                     truncate):
    _, original = saved_feature_model
    folder = tmp_path_factory.mktemp("damaged") / "model"
    shutil.copytree(original, folder)
    blob = bytearray((folder / which).read_bytes())
    if truncate:
        blob = blob[: position % len(blob)]
    else:
        blob[position % len(blob)] ^= 0x01
    (folder / which).write_bytes(bytes(blob))
    with pytest.raises(ValueError):
        load(folder)


# ------------------------------------------------------------------ 10. dataset readers
@FUZZ
@given(dims=st.lists(st.integers(-2, 2**31 - 1), min_size=3, max_size=3),
       payload=st.integers(0, 5000), compress=st.booleans())
def test_10_idx_headers_never_allocate_beyond_what_the_file_can_hold(tmp_path_factory, dims,
                                                                     payload, compress):
    root = tmp_path_factory.mktemp("idx")
    suffix = ".gz" if compress else ""
    write_idx_header(root / f"t10k-images-idx3-ubyte{suffix}", 2051, dims, bytes(payload),
                     compress=compress)
    write_idx_header(root / f"t10k-labels-idx1-ubyte{suffix}", 2049, (dims[0],),
                     bytes(max(0, min(dims[0], 5000))), compress=compress)
    tracemalloc.start()
    try:
        dataset = load_fashion_mnist("test", root=root)
    except ValueError as exc:
        assert "IDX file" in str(exc) or "labels" in str(exc) or "images" in str(exc)
    else:
        assert dataset.images.shape == tuple(dims)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 2**20 + 1032 * (payload + 64) * 2


@FUZZ
@given(flips=st.lists(st.integers(0, 10**6), min_size=1, max_size=6),
       cut=st.floats(0.05, 1))
def test_10_damaged_cifar_pickles_are_value_errors(tmp_path_factory, flips, cut):
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, protocol=2))
    blob = bytearray(cifar_pickle(np.zeros((3, 3072), np.uint8), [1, 2, 3]))
    for position in flips:
        blob[position % len(blob)] = (blob[position % len(blob)] + 1 + position) % 256
    (folder / "test_batch").write_bytes(bytes(blob[: max(1, int(cut * len(blob)))]))
    assume(bytes(blob) != cifar_pickle(np.zeros((3, 3072), np.uint8), [1, 2, 3]))
    tracemalloc.start()
    try:
        load_cifar10(folder.parent, "test")
    except (ValueError, pickle.UnpicklingError):
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 64 * 2**20


# ------------------------------------------------------------------ 12. concurrency
@settings(max_examples=8, deadline=None, derandomize=True)
@given(plan=st.lists(st.sampled_from(["a", "b", "wide", "nan", "few"]), min_size=4,
                     max_size=10))
def test_12_a_reader_sees_one_model_whatever_the_sequence_of_refits(plan):
    data = {"a": RNG.normal(size=(200, 6)), "b": RNG.normal(size=(200, 6)) + 1,
            "wide": RNG.normal(size=(200, 9)), "few": RNG.normal(size=(2, 6))}
    data["nan"] = data["a"].copy()
    data["nan"][0, 0] = np.nan
    query = RNG.normal(size=(20, 6))
    expected = [KNNDetector().fit(data[k]).decision_function(query) for k in ("a", "b")]
    det = KNNDetector().fit(data["a"])
    results, stop = [], threading.Event()

    def read():
        while not stop.is_set() or len(results) < 50:
            try:
                results.append(det.decision_function(query))
            except ValueError as exc:
                results.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    for key in plan:
        try:
            det.fit(data[key])
        except ValueError:
            assert key in ("nan", "few")
    stop.set()
    reader.join()
    for result in results:
        if isinstance(result, str):
            assert "features" in result, result
        else:
            assert any(np.array_equal(result, e) for e in expected), "a mix of two models"


@FUZZ
@given(k=st.integers(-3, 40) | st.sampled_from([True, False, 2.0, "3", None, np.int8(4)]),
       leave_one_out=st.booleans())
def test_13_any_n_neighbors_gives_sorted_neighbours_or_names_the_argument(k, leave_one_out):
    det = MODELS[0]
    n_train = det.train_features_.shape[0]
    queries = None if leave_one_out else det.train_features_[:3] + 0.5
    available = n_train - 1 if leave_one_out else n_train
    try:
        distances, indices = det.kneighbors(queries, n_neighbors=k)
    except (TypeError, ValueError) as exc:
        assert "n_neighbors" in str(exc)
        assert k is not None and (isinstance(k, bool | float | str) or not 1 <= k <= available)
    else:
        expected = det.n_neighbors if k is None else int(k)
        assert indices.shape[1] == expected and 1 <= expected <= available
        assert np.all(np.diff(distances, axis=1) >= 0)
        if leave_one_out:
            assert not np.any(indices == np.arange(n_train)[:, None])
