"""benchmarks/gpu_check.sh, the one command that measures the GPU path, in its CPU dry run.

The real run needs a CUDA machine (docs/performance.md says whether it has run); this
checks that every step of the script runs and records its results, so that the GPU run
does not fail on a mistake a CPU could have caught.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_records_every_step(tmp_path):
    out = tmp_path / "gpu"
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out), "--dry-run"],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["dry_run"] is True
    steps = results["steps"]
    assert list(steps) == ["environment", "pipeline", "oom", "cpu_load", "fashion_mnist"]
    assert all(step["status"] == "ok" for step in steps.values()), steps
    assert steps["oom"]["skipped"] == "needs a CUDA device"
    rows = steps["pipeline"]["rows"]
    assert {(r["backbone"], r["precision"]) for r in rows} == {
        (b, p) for b in ("efficientnet_lite0", "resnet18") for p in ("float32", "bfloat16")}
    assert all(r["train_ratio"] > 0 and r["score_ratio"] > 0 for r in rows)
    assert steps["cpu_load"]["loaded_on"] == "cpu"
    if "skipped" not in steps["fashion_mnist"]:  # Fashion-MNIST installed
        assert steps["fashion_mnist"]["classes_done"] == [0]
        assert (out / "fashion-mnist-full.json").is_file()
    summary = (out / "summary.md").read_text()
    assert "score / ceiling" in summary and "cpu_load" in summary
    assert "== fashion_mnist" in (out / "log.txt").read_text()
    # What comes back from the GPU machine: few files, at most two folders down.
    assert len([p for p in out.rglob("*") if p.is_file()]) <= 8


def test_gpu_check_needs_an_output_folder():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr
