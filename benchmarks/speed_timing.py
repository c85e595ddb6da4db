"""Timing helpers shared by the sections of ``speed.py``: medians, interleaved runs, tables."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import torch


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


