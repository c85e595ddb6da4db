"""What the benchmarks share: comma-list arguments, the environment record, timing
(medians, interleaved runs), tables and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch


# ------------------------------------------------------------------- arguments
def ints(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]`` (an argparse ``type``)."""
    return [int(v) for v in text.split(",")]


def floats(text: str) -> list[float]:
    """``"0.1,0.01"`` -> ``[0.1, 0.01]`` (an argparse ``type``)."""
    return [float(v) for v in text.split(",")]


def names(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (an argparse ``type``)."""
    return text.split(",")


# ----------------------------------------------------------------- environment
def environment(device: str) -> dict:
    """Machine, versions and git commit of a run, for its ``results.json``."""
    import sklearn
    import torch
    import torchvision

    from skmsc._version import __version__

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "device_requested": device,
        "git_commit": commit,
        "versions": {
            "skmsc": __version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    }


# ---------------------------------------------------------------------- timing
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeats, device, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns, repeats, device):
    """Median seconds of each function, timed in turn (A B A B ...) after one warm-up
    each, so that a change in machine load hits all of them alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times, strict=True):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            record.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def write_results(folder, results: dict, text: str) -> None:
    """``results.json`` (what was measured) and ``results.md`` (the tables, as printed)."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    (target / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (target / "results.md").write_text(text)


def table(title, columns, rows):
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def fmt(value):
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.4g}"
    return str(value)


