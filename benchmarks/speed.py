"""Speed and memory of skmsc: ceilings, pipeline efficiency, precision, memory, kNN.

Every figure printed here is measured by this run; nothing is copied from elsewhere.
Sections (``--sections``, default all):

ceiling+pipeline  (``pipeline``)
    For each backbone and image size, back to back in one process so that machine load
    affects both alike: the *ceiling* (training steps on random tensors already on the
    device in channels-last layout: two views, loss, backward, SGD step; and forward
    passes) and the *pipeline* (``fine_tune``, the loop ``fit`` runs, and the public
    ``score_samples``, both from uint8 arrays). Reports views/s, images/s and the ratios.
steps
    Milliseconds per batch of each preprocessing step of ``fit`` and ``score_samples``
    (EfficientNet-Lite0's preprocessing), next to the slower way each replaced, where
    the library can still run that way: crops with ``roi_align`` only, the blur kernel
    with its subnormal tail, scoring's resize in float.
precision
    float32 NCHW against float32 channels-last and bfloat16 (or float16 on CUDA)
    channels-last, training and forward; and the ROC-AUC of a Fashion-MNIST one-class
    fit in float32 and in the 16-bit type.
memory
    Peak RSS (above the resident size before the call) of ``score_samples`` on 1k to
    50k 32x32 uint8 images, each size in a fresh subprocess, with throughput.
knn
    Exact search against pynndescent on real EfficientNet-Lite0 features of
    Fashion-MNIST (plus noisy copies of them beyond 70k): recall@k, score differences,
    build and query times per gallery size.

Each section is a module ``speed_<section>.py`` with a ``section(args, device, out)``
function; ``_harness.py`` holds the timing and table helpers they share. All but
``steps`` (which times private preprocessing helpers on purpose) use the public API.

Results go to ``<out>/performance.json``, ``<out>/performance_tables.md`` (the tables
below, as printed) and ``<out>/performance.png``. Timings are medians of ``--repeats``.

Example::

    python -m benchmarks.speed --sections pipeline,precision
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
from pathlib import Path

import torch

from skmsc.nn import resolve_device

from . import speed_memory
from ._harness import floats, ints, load_average, names

ROOT = Path(__file__).resolve().parents[1]

SECTIONS = ("pipeline", "steps", "precision", "memory", "knn")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", type=names, default=list(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="precision of pipeline and memory runs")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--backbones", type=names,
                   default=["efficientnet_lite0", "resnet18", "resnet50"])
    p.add_argument("--sizes", type=ints, default=[32, 224])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="batches per pipeline measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision-backbones", type=names, default=["efficientnet_lite0", "resnet18"])
    p.add_argument("--precision-size", type=int, default=224)
    p.add_argument("--auc-precisions", type=names, default=["float32", "auto"],
                   help="the first is the reference of the change column")
    p.add_argument("--auc-class", type=int, default=0)
    p.add_argument("--auc-train", type=int, default=1000)
    p.add_argument("--auc-test", type=int, default=2000)
    p.add_argument("--auc-epochs", type=int, default=2)
    p.add_argument("--auc-size", type=int, default=32)
    p.add_argument("--memory-sizes", type=ints, default=[1000, 5000, 20000, 50000])
    p.add_argument("--knn-sizes", type=ints, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--knn-queries", type=int, default=1000)
    p.add_argument("--knn-k", type=int, default=2)
    p.add_argument("--nnd-degrees", type=ints, default=[30, 60],
                   help="pynndescent graph degrees tried at the smallest gallery")
    p.add_argument("--nnd-epsilons", type=floats,
                   default=[0.1, 0.2, 0.3, 0.5], help="query epsilons tried there")
    p.add_argument("--recall-target", type=float, default=0.995,
                   help="the setting used at larger galleries is the fastest that reaches it "
                   "at the smallest")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "skmsc-bench"))
    p.add_argument("--out", default=str(ROOT / "docs"))
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--plot-only", metavar="JSON",
                   help="redraw the PNG from a results file of an earlier run and exit")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.plot_only:
        source = Path(args.plot_only)
        speed_memory.plot(json.loads(source.read_text()), source.with_suffix(".png"))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out = {
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "load_average_start": load_average(),
        },
        "args": {k: v for k, v in vars(args).items()},
    }
    text = (f"Device {device}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
            f", load average at start {out['machine']['load_average_start']}\n\n")
    for name in args.sections:
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; choose from {SECTIONS}")
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        section = importlib.import_module(f".speed_{name}", __package__).section
        text += section(args, device, out) + "\n"
        out[f"{name}_seconds"] = time.perf_counter() - start
    out["machine"]["load_average_end"] = load_average()
    text += f"Load average at end {out['machine']['load_average_end']}\n"
    print(text)
    target = Path(args.out)
    target.mkdir(parents=True, exist_ok=True)
    (target / f"performance{args.tag}.json").write_text(json.dumps(out, indent=1, default=str))
    (target / f"performance_tables{args.tag}.md").write_text(text)
    speed_memory.plot(out, target / f"performance{args.tag}.png")


if __name__ == "__main__":
    main()
