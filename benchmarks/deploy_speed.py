"""CPU scoring speed of a fitted detector: torch eager, bfloat16, ONNX Runtime, OpenVINO,
torch.compile; and one fine-tuning epoch eager against torch.compile.

Fits an EfficientNet-Lite0 detector (``epochs=0``: scoring speed does not depend on
training) on ``--train`` Fashion-MNIST training images (digits if Fashion-MNIST is not
installed) at each ``--sizes`` image size, exports it with :func:`skmsc.onnx.export_onnx`
and scores ``--n`` test images (28x28 uint8, resized inside every configuration) with:

- ``torch float32``: ``score_samples`` with ``precision="float32"`` (eager);
- ``torch auto``: ``precision="auto"`` (today's default; bfloat16 on CPUs with
  AVX512-BF16 or AMX);
- ``torch.compile float32`` / ``torch.compile auto``: the same with the encoder wrapped
  in ``torch.compile`` (compiled during the warm-up run, not timed);
- ``onnxruntime float32``: :class:`skmsc.onnx.ONNXDetector` on the exported file;
- ``openvino default`` / ``openvino f32``: ``ONNXDetector(path, runtime="openvino")``
  with ``precision="auto"`` (OpenVINO's default: bfloat16 on CPUs with native bfloat16)
  and ``"float32"``, if the ``openvino`` package is installed.

Configurations are run in turn (A B C ... A B C ...) ``--repeats`` times after one
warm-up each, so that changes in machine load hit all alike; the medians are reported
with ratios to ``torch auto`` and to ``torch float32``, the largest score difference of
each configuration from ``torch float32``, and the load average. The fine-tuning part
times epochs of ``MeanShiftedNetwork.fine_tune`` eager and compiled (first compiled
epoch, which includes compiling, reported apart).

    python -m benchmarks.deploy_speed \
        --out benchmarks/results/deploy

Writes ``results.json`` and ``results.md`` (the tables, as printed) to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from skmsc import MeanShiftedContrastiveDetector
from skmsc.nn import MeanShiftedNetwork
from skmsc.onnx import ONNXDetector, export_onnx

from ._harness import ints, load_average, table, write_results


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=ints, default=[64, 224])
    p.add_argument("--n", type=int, default=1000, help="images scored")
    p.add_argument("--train", type=int, default=1000, help="gallery images")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--configs", default="all",
                   help="comma-separated configuration names, or 'all'")
    p.add_argument("--tune-images", type=ints, default=[512, 128],
                   help="images per fine-tuning epoch, one per --sizes entry")
    p.add_argument("--tune-epochs", type=int, default=3,
                   help="epochs timed per variant (the first compiled one apart)")
    p.add_argument("--no-tune", action="store_true", help="skip the fine-tuning part")
    p.add_argument("--out", default=None, help="folder for results.json and results.md")
    return p.parse_args(argv)


def load_images(n_train, n_test):
    try:
        from skmsc.datasets import load_fashion_mnist

        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
        return "Fashion-MNIST", train.images[:n_train], test.images[:n_test]
    except FileNotFoundError:
        from sklearn.datasets import load_digits

        X = (load_digits().images * 255 / 16).round().astype(np.uint8)
        return "digits", np.resize(X, (n_train, 8, 8)), np.resize(X[::-1], (n_test, 8, 8))


def scoring_configs(det, path, batch_size, wanted):
    """(name, score function) of each configuration that can run here."""
    eager = det.encoder_
    compiled = torch.compile(eager, dynamic=False)  # one graph per batch shape

    def torch_run(encoder, precision):
        def run(X):
            det.encoder_ = encoder
            det.set_params(precision=precision)
            try:
                return det.score_samples(X)
            finally:
                det.encoder_ = eager
        return run

    configs = [
        ("torch float32", torch_run(eager, "float32")),
        ("torch auto", torch_run(eager, "auto")),
        ("torch.compile float32", torch_run(compiled, "float32")),
        ("torch.compile auto", torch_run(compiled, "auto")),
        ("onnxruntime float32", ONNXDetector(path, batch_size=batch_size).score_samples),
    ]
    try:
        configs += [
            ("openvino default", ONNXDetector(path, runtime="openvino", precision="auto",
                                              batch_size=batch_size).score_samples),
            ("openvino f32", ONNXDetector(path, runtime="openvino",
                                          batch_size=batch_size).score_samples),
        ]
    except ImportError:
        print("openvino is not installed: its rows are left out", flush=True)
    return [c for c in configs if wanted == "all" or c[0] in wanted.split(",")]


def interleaved(functions, X, repeats):
    """Median seconds of each function over ``repeats`` turns, after one warm-up each."""
    outputs = [fn(X) for fn in functions]  # warm-up (and torch.compile's compilation)
    times = [[] for _ in functions]
    for _ in range(repeats):
        for fn, record in zip(functions, times, strict=True):
            start = time.perf_counter()
            fn(X)
            record.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], [min(t) for t in times], outputs


def scoring_section(size, train, test, args, out):
    det = MeanShiftedContrastiveDetector("efficientnet_lite0", epochs=0, image_size=size,
                                         batch_size=args.batch_size, precision="float32",
                                         random_state=0).fit(train)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "det.onnx"
        export_onnx(det, path)
        configs = scoring_configs(det, path, args.batch_size, args.configs)
        names = [name for name, _ in configs]
        load_before = load_average()
        medians, best, outputs = interleaved([fn for _, fn in configs], test, args.repeats)
        load_after = load_average()
    reference = dict(zip(names, outputs, strict=True)).get("torch float32", outputs[0])
    base = dict(zip(names, medians, strict=True))
    rows, records = [], []
    for name, seconds, fastest, scores in zip(names, medians, best, outputs, strict=True):
        record = {
            "config": name, "image_size": size, "n": len(test), "median_s": seconds,
            "best_s": fastest, "images_per_s": len(test) / seconds,
            "vs_auto": base.get("torch auto", np.nan) / seconds,
            "vs_float32": base.get("torch float32", np.nan) / seconds,
            "max_abs_score_diff_vs_float32": float(np.abs(scores - reference).max()),
        }
        records.append(record)
        rows.append([name, record["images_per_s"], record["vs_auto"], record["vs_float32"],
                     record["max_abs_score_diff_vs_float32"]])
    out["scoring"] += records
    return table(
        f"Scoring {len(test)} images at {size} px (median of {args.repeats}; load average "
        f"{_load(load_before)} before, {_load(load_after)} after)",
        ["configuration", "images/s", "x torch auto", "x torch float32",
         "max |score - float32|"], rows,
    )


def tuning_section(size, images, args, out):
    """Seconds per fine-tuning epoch, eager and with torch.compile (interleaved)."""
    center = None
    variants = {}
    for name in ("eager", "torch.compile"):
        network = MeanShiftedNetwork.build("efficientnet_lite0", image_size=size, device="cpu")
        if center is None:
            center = network.center(images, batch_size=args.batch_size)
        if name == "torch.compile":
            network.encoder = torch.compile(network.encoder, dynamic=False)
        variants[name] = network
    epoch_times = {name: [] for name in variants}
    first_compiled = None
    for epoch in range(args.tune_epochs + 1):
        for name, network in variants.items():
            start = time.perf_counter()
            network.fine_tune(images, center, epochs=1, batch_size=32, learning_rate=1e-4,
                              seed=epoch, precision="float32")
            seconds = time.perf_counter() - start
            if epoch == 0:
                if name == "torch.compile":
                    first_compiled = seconds
                continue  # the warm-up epoch
            epoch_times[name].append(seconds)
    medians = {name: statistics.median(t) for name, t in epoch_times.items()}
    out["fine_tuning"].append({
        "image_size": size, "images": len(images), "epochs_timed": args.tune_epochs,
        "median_epoch_s": medians, "first_compiled_epoch_s": first_compiled,
        "speedup": medians["eager"] / medians["torch.compile"],
    })
    rows = [[name, seconds, len(images) / seconds, medians["eager"] / seconds]
            for name, seconds in medians.items()]
    rows.append(["torch.compile, first epoch (compiling)", first_compiled,
                 len(images) / first_compiled, medians["eager"] / first_compiled])
    return table(
        f"One fine-tuning epoch, {len(images)} images at {size} px, batch 32, float32 "
        f"(median of {args.tune_epochs} epochs after a warm-up one; load average "
        f"{_load(load_average())} at the end)",
        ["variant", "seconds/epoch", "images/s", "x eager"], rows,
    )


def _load(value):
    return "n/a" if value is None else f"{value[0]:.2f}"


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    data, train, test = load_images(args.train, args.n)
    out = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "load_average_start": load_average()},
        "args": vars(args), "data": data, "scoring": [], "fine_tuning": [],
    }
    text = (f"{data}: {len(train)} gallery and {len(test)} scored images; torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads\n\n")
    sections = [(f"scoring at {size} px", scoring_section, (size, train, test))
                for size in args.sizes]
    if not args.no_tune:
        sections += [(f"fine-tuning at {size} px", tuning_section, (size, train[:n_images]))
                     for size, n_images in zip(args.sizes, args.tune_images, strict=False)]
    for title, section, section_args in sections:
        print(f"== {title}", flush=True)
        part = section(*section_args, args, out) + "\n"
        print(part, flush=True)
        text += part
        out["machine"]["load_average_end"] = load_average()
        if args.out:  # after every section, so that a run cut short keeps what it did
            write_results(args.out, out, text)


if __name__ == "__main__":
    main()
