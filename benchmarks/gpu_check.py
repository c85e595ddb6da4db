"""The GPU path, measured in one run: speed against the ceiling, out-of-memory halving,
a CUDA-fitted model loaded on the CPU, and the paper-size Fashion-MNIST rows.

Run by ``benchmarks/gpu_check.sh OUT`` (which installs the carried wheels first); every
step is recorded in ``OUT/results.json`` and ``OUT/summary.md`` as soon as it ends, and a
step that fails is recorded with its error, so a run cut short still reports what it did.
Steps, within ``--budget-s`` seconds in all:

1. ``pipeline``: for EfficientNet-Lite0 and randomly initialised ResNet50 and ResNet152
   at 224 px, in float32 and in bfloat16: training views/s of the loop ``fit`` runs
   against the raw training ceiling (steps on random tensors already on the GPU), and
   ``score_samples`` images/s against the raw forward ceiling, measured in the same run
   (``benchmarks.speed_pipeline``);
2. ``oom``: a real CUDA out-of-memory: the GPU's memory is filled but for a little, then
   a ResNet50 fine-tuning epoch and a feature extraction with large batches must halve
   them (with ``ResourceWarning``) and finish; with almost nothing free, fine-tuning must
   stop with ``torch.OutOfMemoryError`` naming the batch size;
3. ``cpu_load``: a detector fitted on CUDA, saved, loaded in a process that sees no GPU,
   and its scores there against the CUDA scores;
4. ``fashion_mnist``: ``benchmarks.reproduce --size full --backbone
   efficientnet_lite0`` (every training image of the class, the whole test set, 20
   epochs at lr 1e-5, 224 px; ResNet152's ImageNet weights cannot be fetched offline),
   one class after another while the time left allows one more.

``--dry-run`` runs every step on the CPU with tiny sizes (the test suite does this); the
out-of-memory step then records that it needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from skmsc import MeanShiftedContrastiveDetector
from skmsc.nn import MeanShiftedNetwork

from . import speed_pipeline
from ._harness import table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Seconds kept free at the end for writing results; and the least a class may need.
_MARGIN_S = 15
_MIN_CLASS_S = 60


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--budget-s", type=float, default=450.0,
                   help="seconds for all steps (the run must end within 8 minutes)")
    p.add_argument("--dry-run", action="store_true",
                   help="every step on the CPU with tiny sizes (for the test suite)")
    return p.parse_args(argv)


class Run:
    """The results so far, written after every step."""

    def __init__(self, out: Path, budget_s: float):
        self.out, self.start, self.budget = out, time.perf_counter(), budget_s
        self.results = {"steps": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.text = {}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def step(self, name, function):
        print(f"== {name} ({self.left():.0f} s left)", flush=True)
        begun = time.perf_counter()
        try:
            record, text = function()
            record["status"] = "ok"
        except Exception as exc:  # recorded, and the next step still runs
            record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()[-3000:]}
            text = f"### {name}\n\nFAILED: {record['error']}\n"
        record["seconds"] = time.perf_counter() - begun
        self.results["steps"][name] = record
        self.text[name] = text
        self.write()
        print(text, flush=True)

    def write(self):
        self.results["elapsed_s"] = time.perf_counter() - self.start
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1, default=str))
        (self.out / "summary.md").write_text("\n".join(self.text.values()))


def environment(device):
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "device": str(device), "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    memory_gib=torch.cuda.get_device_properties(device).total_memory / 2**30)
    try:
        import sklearn
        import timm

        info.update(sklearn=sklearn.__version__, timm=timm.__version__)
    except ImportError as exc:
        info["missing"] = str(exc)
    text = "### environment\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n"
    return info, text


def pipeline(device, dry):
    backbones = ["efficientnet_lite0", "resnet18"] if dry else \
        ["efficientnet_lite0", "resnet50", "resnet152"]
    rows, text = [], ""
    for precision in ("float32", "bfloat16"):
        args = SimpleNamespace(
            backbones=backbones, sizes=[32 if dry else 224], batch_size=8 if dry else 64,
            steps=1 if dry else 5, repeats=1 if dry else 3, precision=precision,
        )
        out = {}
        text += speed_pipeline.section(args, device, out) + "\n"
        rows += out["pipeline"]
    return {"rows": rows}, text


def out_of_memory(device, dry):
    if device.type != "cuda":
        return {"skipped": "needs a CUDA device"}, "### oom\n\nskipped: needs a CUDA device\n"
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(512, 224, 224, 3), dtype=np.uint8)
    record = {}
    for case, keep_free in (("halves and finishes", 3 * 2**30), ("smallest batch fails", 0)):
        torch.cuda.empty_cache()
        net = MeanShiftedNetwork.build("resnet50", weights=None, image_size=224,
                                       device=device)
        center = np.zeros(net.feature_dim, dtype=np.float32)
        free, _ = torch.cuda.mem_get_info(device)
        hog = torch.empty(max(0, free - keep_free - 64 * 2**20), dtype=torch.uint8,
                          device=device)
        entry = {"free_gib_left": (torch.cuda.mem_get_info(device)[0]) / 2**30}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                losses = net.fine_tune(X, center, epochs=1, batch_size=512,
                                       learning_rate=1e-5, precision="float32")
                entry["fine_tune"] = f"finished, loss {losses[0]:.4f}"
                features = net.extract(X, batch_size=512, precision="float32")
                entry["extract"] = f"finished, {features.shape}"
            except torch.OutOfMemoryError as exc:
                entry["error"] = str(exc)
        entry["warnings"] = [str(w.message) for w in caught
                             if issubclass(w.category, ResourceWarning)]
        record[case] = entry
        del hog, net
        torch.cuda.empty_cache()
    lines = [f"- {case}: {len(e['warnings'])} halvings; "
             f"{e.get('fine_tune', e.get('error', ''))}; {e.get('extract', '')}"
             for case, e in record.items()]
    return record, "### oom (ResNet50, 224 px, batch 512)\n\n" + "\n".join(lines) + "\n"


def cpu_load(device, dry):
    X, X_test = _images(200 if not dry else 40, 200 if not dry else 20)
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", epochs=1, batch_size=32 if not dry else 8,
        image_size=64 if not dry else 32, device=str(device), precision="float32",
        early_stopping=False, random_state=0,
    ).fit(X)
    scores = det.score_samples(X_test)
    with tempfile.TemporaryDirectory() as folder:
        det.save(Path(folder) / "model")
        np.save(Path(folder) / "X.npy", X_test)
        code = (
            "import sys, numpy as np, torch; from skmsc import MeanShiftedContrastiveDetector;"
            f"d = MeanShiftedContrastiveDetector.load({folder!r} + '/model');"
            "assert not torch.cuda.is_available();"
            f"np.save({folder!r} + '/cpu.npy', d.score_samples(np.load({folder!r} + '/X.npy')));"
            "print(d.device_)"
        )
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        cpu_scores = np.load(Path(folder) / "cpu.npy")
    record = {"fitted_on": str(det.device_), "loaded_on": done.stdout.strip(),
              "max_abs_score_diff": float(np.abs(cpu_scores - scores).max()),
              "score_range": [float(scores.min()), float(scores.max())]}
    return record, (f"### cpu_load\n\nFitted on {record['fitted_on']}, loaded on "
                    f"{record['loaded_on']}; largest score difference "
                    f"{record['max_abs_score_diff']:.3g} (scores {record['score_range']})\n")


def _images(n_train, n_test):
    try:
        from skmsc.datasets import load_fashion_mnist

        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
        return train.images[train.labels == 0][:n_train], test.images[:n_test]
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
                rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8))


def fashion_mnist(run, device, dry):
    try:
        from skmsc.datasets import load_fashion_mnist

        load_fashion_mnist("test")
    except FileNotFoundError as exc:
        return {"skipped": str(exc)}, f"### fashion_mnist\n\nskipped: {exc}\n"
    scratch = Path(tempfile.mkdtemp(prefix="skmsc-fmnist-"))
    command = [sys.executable, "-m", "benchmarks.reproduce", "--dataset", "fashion-mnist",
               "--size", "full", "--backbone", "efficientnet_lite0", "--device", str(device),
               "--out", str(scratch), "--resume"]
    if dry:
        command += ["--n-train", "40", "--n-test-per-class", "3", "--epochs", "1",
                    "--image-size", "32", "--batch-size", "8", "--methods", "pretrained-knn",
                    "msc"]
    record = {"command": " ".join(command[1:]), "classes_done": [], "class_seconds": []}
    estimate = _MIN_CLASS_S
    for label in range(1 if dry else 10):
        left = run.left() - _MARGIN_S
        if left < estimate:
            record["stopped"] = f"{left:.0f} s left, a class took {estimate:.0f} s"
            break
        begun = time.perf_counter()
        try:
            done = subprocess.run([*command, "--classes", str(label)], capture_output=True,
                                  text=True, timeout=left, cwd=ROOT)
        except subprocess.TimeoutExpired:
            record["stopped"] = f"class {label} did not finish in the {left:.0f} s left"
            break
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        seconds = time.perf_counter() - begun
        record["classes_done"].append(label)
        record["class_seconds"].append(seconds)
        estimate = 1.1 * seconds
        shutil.copy(scratch / "results.json", run.out / "fashion-mnist-full.json")
    rows = []
    if (scratch / "results.json").is_file():
        payload = json.loads((scratch / "results.json").read_text())
        record["classes"] = payload["classes"]
        rows = [[row["class"], m["method"], 100 * m["roc_auc"], m["fit_seconds"],
                 m["score_seconds"]] for row in payload["classes"] for m in row["methods"]]
    shutil.rmtree(scratch, ignore_errors=True)
    return record, table(
        "fashion_mnist (full size, EfficientNet-Lite0; " + record.get("stopped", "all classes")
        + ")", ["class", "method", "ROC-AUC %", "fit s", "score s"], rows)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda")
    run = Run(args.out, args.budget_s)
    run.results["dry_run"] = args.dry_run
    run.step("environment", lambda: environment(device))
    run.step("pipeline", lambda: pipeline(device, args.dry_run))
    run.step("oom", lambda: out_of_memory(device, args.dry_run))
    run.step("cpu_load", lambda: cpu_load(device, args.dry_run))
    run.step("fashion_mnist", lambda: fashion_mnist(run, device, args.dry_run))
    print(f"done in {time.perf_counter() - run.start:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
