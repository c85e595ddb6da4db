"""Section ``memory`` of speed.py: peak memory and throughput of ``score_samples`` on 1k to
50k images, each size in a fresh process; and the figure of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ._harness import table

ROOT = Path(__file__).resolve().parents[1]


_MEMORY_CHILD = r"""
import json, os, sys, time, threading
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from skmsc import MeanShiftedContrastiveDetector
n, batch, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
rng = np.random.default_rng(0)
det = MeanShiftedContrastiveDetector("efficientnet_lite0", epochs=0, image_size=32,
    batch_size=batch, precision=precision, random_state=0)
det.fit(rng.integers(0, 256, size=(1000, 32, 32, 3), dtype=np.uint8))
X = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
det.score_samples(X[:batch])  # warm up allocator and kernels
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident size (VmHWM) to the current size
before = status("VmRSS:")
start = time.perf_counter()
scores = det.score_samples(X)
seconds = time.perf_counter() - start
print(json.dumps(dict(n=n, rss_before=before, peak=status("VmHWM:"), seconds=seconds,
    train_features_bytes=det.train_features_.nbytes, finite=bool(np.isfinite(scores).all()))))
"""


def section(args, device, out):
    rows = []
    threads = str(torch.get_num_threads())
    for n in args.memory_sizes:
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE")
        result = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(n), str(args.batch_size), args.precision,
             threads], capture_output=True, text=True, env=env, check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        row["growth_mb"] = (row["peak"] - row["rss_before"]) / 2**20
        row["images_per_s"] = n / row["seconds"]
        rows.append(row)
        print(f"  {n} images: peak +{row['growth_mb']:.0f} MB over {row['rss_before'] / 2**20:.0f}"
              f" MB, {row['images_per_s']:.0f} img/s", flush=True)
    out["memory"] = rows
    by_n = {r["n"]: r for r in rows}
    text = table(
        "score_samples memory and throughput (EfficientNet-Lite0, 32x32 uint8, fresh process "
        "each; peak = VmHWM after resetting it just before the call)",
        ["images", "RSS before (MB)", "peak growth (MB)", "img/s", "all finite"],
        [[r["n"], r["rss_before"] / 2**20, r["growth_mb"], r["images_per_s"], r["finite"]]
         for r in rows],
    )
    if 5000 in by_n and 50000 in by_n:
        diff = (by_n[50000]["peak"] - by_n[50000]["rss_before"]) - (
            by_n[5000]["peak"] - by_n[5000]["rss_before"])
        out["memory_50k_minus_5k_mb"] = diff / 2**20
        text += (f"\nPeak growth scoring 50,000 minus scoring 5,000: {diff / 2**20:.0f} MB. "
                 f"Stored training features (1,000 x 1280 float32): "
                 f"{rows[0]['train_features_bytes'] / 2**20:.1f} MB; they cost 5 KiB per "
                 "training image.\n")
    return text


def plot(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    memory = out.get("memory")
    if not memory:
        return
    n = [r["n"] for r in memory]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(n, [r["images_per_s"] for r in memory], "o-")
    left.set(xscale="log", xlabel="images scored", ylabel="images / s",
             title="score_samples throughput")
    right.plot(n, [(r["peak"] - r["rss_before"]) / 2**20 for r in memory], "o-",
               label="peak growth during the call")
    right.plot(n, [n_i * 32 * 32 * 3 / 2**20 for n_i in n], "--",
               label="size of the uint8 input (resident before the call, not in the growth)")
    right.set(xscale="log", xlabel="images scored", ylabel="MB",
              title="score_samples memory (32x32, Lite0)")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
