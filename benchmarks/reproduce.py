"""Reproduce the paper's one-class anomaly detection protocol and write the results.

For each class c: fit on the training images of class c only, score the whole test set,
and compute the ROC-AUC with "normal" = class c. Three methods run side by side on the
same images and backbone: the pretrained-feature kNN baseline (``epochs=0``), MSC, and
MSC with the angular loss.

Results go to ``--out``: ``results.json`` (configuration, environment, per-class
records), ``results.csv`` (one row per class and method) and ``scores/<class>.npz``
(test labels and every method's scores, for ROC curves). They are rewritten after
every class, so a run that stops early still leaves usable results; ``--resume``
continues such a run. Never edit them by hand: ``benchmarks.make_report`` turns
them into ``docs/benchmarks.md``.

Example (the committed CPU results)::

    python -m benchmarks.reproduce --dataset fashion-mnist \\
        --size cpu --out benchmarks/results/fashion-mnist-cpu
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from skmsc import MeanShiftedContrastiveDetector
from skmsc import datasets as skds

from ._harness import environment

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "folder", "elpv")
RESULT_FORMAT = 1


@dataclass(frozen=True)
class Size:
    """One named benchmark configuration: how much data and how much training.

    ``n_train`` / ``n_test_per_class`` of ``None`` mean every image (the paper's
    protocol). ``backbone`` ``None`` means the paper's ResNet152.
    """

    name: str
    description: str
    n_train: int | None
    n_test_per_class: int | None
    epochs: int
    learning_rate: float
    frozen_stages: str | int
    image_size: int
    batch_size: int
    backbone: str
    early_stopping: bool = False
    methods: tuple[str, ...] = ("pretrained-knn", "msc", "msc-angular")


SIZES = {
    # The paper's protocol and settings (the estimator's defaults): meant for a GPU.
    "full": Size(
        name="full",
        description=(
            "The paper's protocol and training settings: every training image of the "
            "normal class, the whole test set, ResNet152, 20 epochs of SGD at lr 1e-5, "
            "224x224 inputs. Meant for a GPU."
        ),
        n_train=None, n_test_per_class=None, epochs=20, learning_rate=1e-5,
        frozen_stages="auto", image_size=224, batch_size=64, backbone="resnet152",
    ),
    # The CPU setting of the package (skmsc.presets.PRESETS["cpu"]): the paper's 224 px,
    # lr 3e-4 for 4 epochs, with the label-free safeguard (local + global proxy). Sized for
    # the five CIFAR-10 development classes x 2 methods within 90 minutes on 2 CPU cores.
    "cpu": Size(
        name="cpu",
        description=(
            "CPU preset (skmsc.presets.preset('cpu')): EfficientNet-Lite0 (offline "
            "weights) at 224x224, 4 epochs of SGD at lr 3e-4, batch 32, frozen stages "
            "'auto', early_stopping on (10 % of the training images held out to choose the "
            "epoch, epoch 0 included, against local and global synthetic anomalies). 1,000 "
            "training images of the normal class and a stratified test subsample of 100 "
            "images per class (Fashion-MNIST, CIFAR-10 folders); ELPV: every training cell "
            "and the whole test set. Methods: the pretrained kNN and MSC."
        ),
        n_train=1000, n_test_per_class=100, epochs=4, learning_rate=3e-4,
        frozen_stages="auto", image_size=224, batch_size=32, backbone="efficientnet_lite0",
        early_stopping=True, methods=("pretrained-knn", "msc"),
    ),
    # The CPU preset before the global proxy: lr 1e-4 for 3 epochs (its safeguard, on
    # local anomalies only, kept epoch 0 everywhere); its runs are kept.
    "cpu-lr1e-4": Size(
        name="cpu-lr1e-4",
        description=(
            "The CPU preset before the global proxy: EfficientNet-Lite0 at 224x224, 3 "
            "epochs of SGD at lr 1e-4, batch 32, frozen stages 'auto', early_stopping on. "
            "1,000 training images, 100 test images per class; ELPV: every image."
        ),
        n_train=1000, n_test_per_class=100, epochs=3, learning_rate=1e-4,
        frozen_stages="auto", image_size=224, batch_size=32, backbone="efficientnet_lite0",
        early_stopping=True, methods=("pretrained-knn", "msc"),
    ),
    # The CPU preset until the safeguard existed: 64 px and a strong step. It matched the
    # baseline on Fashion-MNIST and lowered ROC-AUC on held-out natural photos.
    "cpu-64px": Size(
        name="cpu-64px",
        description=(
            "The earlier CPU preset: 3,000 training images of the normal class (half of "
            "it), the whole test set, EfficientNet-Lite0 (offline weights), 64x64 inputs, "
            "2 epochs of SGD at lr 3e-3, batch 32, only the last two blocks and the head "
            "trained (frozen_stages=6 of 9). Everything else (loss, temperature, "
            "augmentation, weight decay, k=2) as in the paper."
        ),
        n_train=3000, n_test_per_class=None, epochs=2, learning_rate=3e-3,
        frozen_stages=6, image_size=64, batch_size=32, backbone="efficientnet_lite0",
    ),
    # The first CPU preset (about 30 SGD steps per class); its two runs are kept.
    "cpu-short": Size(
        name="cpu-short",
        description=(
            "The first CPU preset: 300 training images of the normal class, a stratified "
            "test subsample of 100 images per class, EfficientNet-Lite0 (offline "
            "weights), 64x64 inputs, 3 epochs of SGD at lr 1e-2, batch 32, only the last "
            "two blocks and the head trained (frozen_stages=6 of 9). Everything else "
            "(loss, temperature, augmentation, weight decay, k=2) as in the paper."
        ),
        n_train=300, n_test_per_class=100, epochs=3, learning_rate=1e-2,
        frozen_stages=6, image_size=64, batch_size=32, backbone="efficientnet_lite0",
    ),
}

# method name -> detector parameters that differ between methods
METHODS = {
    "pretrained-knn": {"epochs": 0, "angular": False},
    "msc": {"angular": False},
    "msc-angular": {"angular": True},
}
METHOD_LABELS = {
    "pretrained-knn": "Pretrained kNN (no fine-tuning)",
    "msc": "MSC",
    "msc-angular": "MSC + angular loss",
}


# ------------------------------------------------------------------------------- data
def load_dataset(name: str, root: str | None, load_size: tuple[int, int] | None):
    """The train and test sets of a data set, from local files only."""
    if name == "fashion-mnist":
        return skds.load_fashion_mnist("train", root), skds.load_fashion_mnist("test", root)
    if name in ("cifar10", "cifar100"):
        if root is None:
            raise SystemExit(
                f"--dataset {name} needs --root: the folder holding the extracted "
                "torchvision-format batches (cifar-10-batches-py/ or cifar-100-python/)."
            )
        if name == "cifar10":
            return skds.load_cifar10(root, "train"), skds.load_cifar10(root, "test")
        # The paper uses CIFAR-100's 20 super-classes.
        return (skds.load_cifar100(root, "train", label="coarse"),
                skds.load_cifar100(root, "test", label="coarse"))
    if name == "folder":
        if root is None:
            raise SystemExit("--dataset folder needs --root: a folder with train/<class>/* "
                             "and test/<class>/*.")
        return skds.load_image_folder(root, "train"), skds.load_image_folder(root, "test")
    raise SystemExit(f"unknown dataset {name!r}; choose one of {DATASETS}")


def pixels(samples, load_size):
    """Decode file paths (image folders); arrays pass through."""
    if samples.dtype.kind in "US":
        return skds.read_images(samples, size=load_size)
    return samples


def stratified_test(test, n_per_class: int | None, seed: int):
    """The test set, or ``n_per_class`` images of each of its classes."""
    if n_per_class is None:
        return test
    smallest = int(np.bincount(test.labels).min())
    return skds.subsample(test, min(n_per_class, smallest), random_state=seed)


def train_images(train, test, normal_class: int, n_train: int | None, seed: int, load_size):
    """The normal class's training images (a seeded subsample of ``n_train`` of them)."""
    X_train, X_test, y_test = skds.one_class_split(train, test, normal_class)
    if n_train is not None and len(X_train) > n_train:
        rng = np.random.default_rng([seed, normal_class])
        X_train = X_train[np.sort(rng.choice(len(X_train), n_train, replace=False))]
    return pixels(X_train, load_size), y_test


# ---------------------------------------------------------------------------- running
def run_method(method: str, config: Size, X_train, X_test, y_test, seed: int, device: str):
    """Fit one method on the normal images and score the test set."""
    from sklearn.metrics import roc_auc_score

    params = dict(
        backbone=config.backbone, epochs=config.epochs, learning_rate=config.learning_rate,
        frozen_stages=config.frozen_stages, image_size=config.image_size,
        batch_size=config.batch_size, device=device, random_state=seed,
        early_stopping=config.early_stopping,
    )
    params.update(METHODS[method])
    detector = MeanShiftedContrastiveDetector(**params)
    start = time.perf_counter()
    detector.fit(X_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = detector.score_samples(X_test)  # higher = more normal
    score_seconds = time.perf_counter() - start
    record = {
        "method": method,
        "roc_auc": float(roc_auc_score(y_test, scores)),
        "fit_seconds": round(fit_seconds, 2),
        "score_seconds": round(score_seconds, 2),
        "loss_curve": [round(float(v), 5) for v in detector.loss_curve_],
        "kept_epoch": int(detector.best_epoch_),
        "validation_scores": detector.validation_scores_,
        "device": str(detector.device_),
    }
    return record, scores, detector.versions_


def elpv_breakdown(elpv, arrays: dict, methods) -> dict:
    """ELPV ROC-AUC per defect severity and per cell type (normals always included)."""
    from sklearn.metrics import roc_auc_score

    y, p, kind = elpv.y_test, elpv.defect_probability, elpv.cell_type
    subsets = {f"severity {v:.2f}": (y == 1) | np.isclose(p, v) for v in (1 / 3, 2 / 3, 1.0)}
    subsets.update({t: kind == t for t in ("mono", "poly")})
    return {method: {name: float(roc_auc_score(y[keep], arrays[method][keep]))
                     for name, keep in subsets.items()} for method in methods}


def write_results(out: Path, payload: dict, scores_by_class: dict) -> None:
    """Write results.json, results.csv and the per-class score files (atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores").mkdir(exist_ok=True)
    for class_name, arrays in scores_by_class.items():
        np.savez_compressed(out / "scores" / f"{slug(class_name)}.npz", **arrays)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out / "results.json")
    tmp = out / "results.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "size", "backbone", "class_index", "class", "method",
                         "roc_auc", "fit_seconds", "score_seconds", "n_train", "n_test"])
        for row in payload["classes"]:
            for rec in row["methods"]:
                writer.writerow([
                    payload["dataset"], payload["size"], payload["config"]["backbone"],
                    row["class_index"], row["class"], rec["method"], f"{rec['roc_auc']:.6f}",
                    rec["fit_seconds"], rec["score_seconds"], row["n_train"], row["n_test"],
                ])
    tmp.replace(out / "results.csv")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "class"


def summary(payload: dict) -> dict:
    """Mean ROC-AUC of each method over the classes done so far."""
    means = {}
    for method in payload["methods"]:
        values = [rec["roc_auc"] for row in payload["classes"] for rec in row["methods"]
                  if rec["method"] == method]
        if values:
            means[method] = float(np.mean(values))
    return means


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Sizes:\n" + "\n".join(f"  {s.name}: {s.description}" for s in SIZES.values()),
    )
    parser.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    parser.add_argument("--root", help="data folder (CIFAR batches or image folder; "
                        "Fashion-MNIST defaults to /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--out", required=True, type=Path, help="results folder")
    parser.add_argument("--classes", nargs="+",
                        help="normal classes to run (indices or names; default: all)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS),
                        help="default: the size's methods")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--load-size", type=int, nargs=2, metavar=("H", "W"),
                        help="resize image-folder files to H x W when decoding")
    parser.add_argument("--resume", action="store_true",
                        help="keep the classes already in --out (same configuration)")
    over = parser.add_argument_group(
        "overrides", "change one setting of the size (recorded in the results as a "
        "non-standard configuration)")
    over.add_argument("--backbone")
    over.add_argument("--epochs", type=int)
    over.add_argument("--learning-rate", type=float)
    over.add_argument("--frozen-stages", type=lambda s: s if s == "auto" else int(s))
    over.add_argument("--image-size", type=int)
    over.add_argument("--batch-size", type=int)
    over.add_argument("--n-train", type=int)
    over.add_argument("--n-test-per-class", type=int)
    return parser.parse_args(argv)


def resolve_config(args) -> tuple[Size, dict]:
    config = SIZES[args.size]
    overrides = {
        f.name: getattr(args, f.name) for f in fields(Size)
        if f.name not in ("name", "description") and getattr(args, f.name, None) is not None
    }
    overrides = {k: v for k, v in overrides.items() if getattr(config, k) != v}
    return replace(config, **overrides), overrides


def main(argv=None) -> dict:
    args = parse_args(argv)
    config, overrides = resolve_config(args)
    load_size = tuple(args.load_size) if args.load_size else None
    args.methods = args.methods or list(config.methods)
    if args.dataset == "elpv":
        # One task: defect-free cells are normal (skmsc.datasets.load_elpv's protocol).
        elpv = skds.load_elpv(random_state=args.seed)
        X_test, names = elpv.X_test, ["defect-free"]
    else:
        train, test = load_dataset(args.dataset, args.root, load_size)
        test = stratified_test(test, config.n_test_per_class, args.seed)
        X_test = pixels(skds._samples(test), load_size)
        names = train.class_names
    if args.classes:
        wanted = [names.index(c) if c in names else int(c) for c in args.classes]
    else:
        wanted = list(range(len(names)))

    out = args.out
    payload = {
        "format": RESULT_FORMAT,
        "dataset": args.dataset,
        "size": config.name,
        "config": asdict(config),
        "overrides": overrides,
        "seed": args.seed,
        "methods": args.methods,
        "command": " ".join(["python", "-m", "benchmarks.reproduce", *(argv or sys.argv[1:])]),
        "environment": environment(args.device),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": [],
    }
    previous_seconds = 0.0
    if args.resume and (out / "results.json").is_file():
        old = json.loads((out / "results.json").read_text())
        # The settings must match; the wording of the size's description may change.
        same = all(old.get(k) == payload[k] for k in ("dataset", "seed", "methods", "format"))
        # Compared as JSON holds them (tuples come back as lists).
        same &= {**old.get("config", {}), "description": ""} == json.loads(json.dumps(
            {**payload["config"], "description": ""}))
        if not same:
            raise SystemExit(f"--resume: {out} holds a run with another configuration")
        payload["classes"], payload["started"] = old["classes"], old["started"]
        previous_seconds = old.get("wall_seconds", 0.0)
    done = {row["class_index"] for row in payload["classes"]}

    start = time.perf_counter()
    print(f"{args.dataset} / size {config.name}{' + ' + str(overrides) if overrides else ''}: "
          f"{len(X_test)} test images, classes {wanted}", flush=True)
    for c in wanted:
        if c in done:
            continue
        class_start = time.perf_counter()
        if args.dataset == "elpv":
            X_train, y_test = elpv.X_train, elpv.y_test
        else:
            X_train, y_test = train_images(train, test, c, config.n_train, args.seed, load_size)
        row = {"class_index": c, "class": names[c], "n_train": int(len(X_train)),
               "n_test": int(len(y_test)), "n_test_normal": int(y_test.sum()), "methods": []}
        arrays = {"y_test": y_test.astype(np.int8)}
        for method in args.methods:
            record, scores, versions = run_method(
                method, config, X_train, X_test, y_test, args.seed, args.device)
            row["methods"].append(record)
            arrays[method] = scores.astype(np.float32)
            payload["environment"]["versions"] = versions
            print(f"  class {c} {names[c]!r:14} {method:15} ROC-AUC {record['roc_auc']:.4f} "
                  f"(fit {record['fit_seconds']:.0f} s, score {record['score_seconds']:.0f} s)",
                  flush=True)
        if args.dataset == "elpv":
            row["breakdown"] = elpv_breakdown(elpv, arrays, args.methods)
        row["seconds"] = round(time.perf_counter() - class_start, 1)
        payload["classes"].append(row)
        payload["classes"].sort(key=lambda r: r["class_index"])
        payload["wall_seconds"] = round(previous_seconds + time.perf_counter() - start, 1)
        payload["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        payload["complete"] = len(payload["classes"]) == len(names)
        payload["mean_roc_auc"] = summary(payload)
        write_results(out, payload, {names[c]: arrays})

    means = summary(payload)
    listed = ", ".join(f"{m} {v:.4f}" for m, v in means.items())
    print(f"mean ROC-AUC over {len(payload['classes'])} classes: {listed}; "
          f"wall time {payload.get('wall_seconds', 0.0):.0f} s", flush=True)
    return payload


if __name__ == "__main__":
    main()
