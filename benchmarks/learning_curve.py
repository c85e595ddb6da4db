"""ROC-AUC after every epoch of mean-shifted fine-tuning, and what the safeguard picks.

One training run per (task, setting) gives the whole curve: epoch 0 is the pretrained kNN
baseline, epoch e the network after e epochs. Labels are used only to evaluate. Each run
is the detector's own fine-tuning with ``early_stopping`` on, so it also records the
label-free held-out proxy after every epoch and the epoch the safeguard keeps (training
runs all ``--epochs`` here, so the curve is whole). Tasks: Fashion-MNIST one-class (fit on
one class, a stratified test subsample) or ELPV solar cells (``skmsc.datasets.load_elpv``:
fit on 60 % of the defect-free cells, test on the rest and every defective cell).

Settings are ``lr:frozen_stages[:angular]``. ``--out`` gets ``curves.json`` (arguments,
per-epoch ROC-AUC, proxy, chosen epoch) and ``scores/<task>-<setting>.npz`` (the test
labels and every epoch's scores, for paired bootstrap intervals).

Example (ELPV at 224 px, two learning rates)::

    python -m benchmarks.learning_curve --dataset elpv \\
        --settings 1e-4:auto 1e-3:auto --image-size 224 --epochs 3 \\
        --out benchmarks/results/curves/elpv-224
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skmsc import MeanShiftedContrastiveDetector
from skmsc import datasets as skds
from skmsc._estimators._network_mixin import fit_seeds
from skmsc.data._batches import batch_source
from skmsc.neighbors import ExactIndex, knn_scores
from skmsc.nn import FineTuning, MeanShiftedNetwork, _safeguard
from skmsc.nn._training import features_of_inputs, network_inputs

BOOTSTRAP_ROUNDS = 200


def parse_setting(text: str) -> dict:
    parts = text.split(":")
    frozen = parts[1] if len(parts) > 1 else "auto"
    return {"learning_rate": float(parts[0]),
            "frozen_stages": frozen if frozen == "auto" else int(frozen),
            "angular": len(parts) > 2 and parts[2] in ("1", "angular", "true")}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def tasks(args):
    """``(name, X_train, X_test, y_test, extra)`` for each task of the run."""
    if args.dataset == "elpv":
        split = skds.load_elpv(random_state=args.seed)
        X_train = split.X_train
        if args.n_train is not None and args.n_train < len(X_train):
            rng = np.random.default_rng(args.seed)
            X_train = X_train[np.sort(rng.choice(len(X_train), args.n_train, replace=False))]
        yield "elpv", X_train, split.X_test, split.y_test, {
            "defect_probability": split.defect_probability, "cell_type": split.cell_type}
        return
    if args.dataset == "folder":
        # An image-folder tree (e.g. CIFAR-10 as JPEGs: train/<class>/*, test/<class>/*).
        train = skds.load_image_folder(args.root, "train")
        test = skds.load_image_folder(args.root, "test")
        prefix = args.root.name.lower()
    else:
        train, test = skds.load_fashion_mnist("train"), skds.load_fashion_mnist("test")
        prefix = "fmnist"
    test = skds.subsample(test, args.n_test_per_class, random_state=args.seed)
    X_test_all = None
    for c in args.classes:
        X_train, X_test, y_test = skds.one_class_split(train, test, c)
        rng = np.random.default_rng([args.seed, c])
        n = min(args.n_train or len(X_train), len(X_train))
        X_train = X_train[np.sort(rng.choice(len(X_train), n, replace=False))]
        if args.dataset == "folder":
            X_train = skds.read_images(X_train)
            if X_test_all is None:
                X_test_all = skds.read_images(X_test)
            X_test = X_test_all
        yield f"{prefix}-{c}-{slug(train.class_names[c])}", X_train, X_test, y_test, {}


def curve(X_train, X_test, y_test, setting: dict, args) -> dict:
    """Fine-tune with the detector's safeguard; test ROC-AUC at every evaluated epoch.

    The calls and seeds are the detector's own (``MeanShiftedNetwork.build``, ``extract``,
    ``mean_shift``, ``fine_tune_and_extract`` with a :class:`~skmsc.nn.FineTuning`; seeds
    as ``random_state=args.seed`` gives them), with an ``on_epoch`` hook that scores the
    test set after every epoch and ``n_iter_no_change`` past the last epoch, so that every
    epoch is trained and recorded while the safeguard still says which it would keep.
    """
    seeds = fit_seeds(args.seed)
    network = MeanShiftedNetwork.build(
        args.backbone, weights=MeanShiftedContrastiveDetector().weights,
        frozen_stages=setting["frozen_stages"], image_size=args.image_size, device="cpu",
        seed=int(seeds[0]))
    features_precision = network.precision(args.precision, training=False)
    extract = dict(batch_size=args.batch_size, precision=features_precision)
    pretrained = network.extract(X_train, **extract)
    center = network.mean_shift(pretrained, angular=setting["angular"])
    scores_by_epoch, seconds = [], []
    clock = [time.perf_counter()]

    proxy_scores = []
    probe_inputs = make_probes(X_train, network.spec, args, int(seeds[1])) if args.probes else None

    def on_epoch(epoch, features, held_out_scores):
        proxy_scores.append(held_out_scores)
        seconds.append(round(time.perf_counter() - clock[0], 1))
        test = network.extract(X_test, **extract)
        if probe_inputs is not None:
            dump_probes(args, epoch, network.encoder, network.spec, features_precision,
                        features, test, probe_inputs, setting)
        scores_by_epoch.append(knn_scores(ExactIndex(features), test, args.n_neighbors))
        print(f"    epoch {epoch}: ROC-AUC {100 * roc_auc_score(y_test, scores_by_epoch[-1]):.2f}",
              flush=True)
        clock[0] = time.perf_counter()

    tuning = FineTuning(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=setting["learning_rate"],
        angular=setting["angular"], seed=(int(seeds[1]), int(seeds[2])),
        precision=network.precision(args.precision, training=True),
        features_precision=features_precision, early_stopping=True,
        validation_fraction=args.validation_fraction, n_iter_no_change=args.epochs + 1)
    losses, _, proxy, chosen = network.fine_tune_and_extract(
        X_train, pretrained, center, tuning, on_epoch=on_epoch)
    aucs = [float(roc_auc_score(y_test, s)) for s in scores_by_epoch]
    return {"roc_auc_by_epoch": aucs, "proxy_by_epoch": proxy, "chosen_epoch": chosen,
            "loss_by_epoch": losses, "seconds_by_epoch": seconds,
            }, np.stack(scores_by_epoch), proxy_scores


PROBE_KINDS = ("cut-paste", "scar", "blend", *_safeguard.GLOBAL_KINDS)


def make_probes(X_train, spec, args, seed: int) -> dict:
    """Network inputs of the safeguard's held-out normals and of one altered copy of each,
    per kind (local: cut-paste, scar, blend; global: rotate, flip, shuffle, mosaic)."""
    train_rows, held_out = _safeguard.validation_rows(len(X_train), args.validation_fraction,
                                                      seed)
    inputs = network_inputs(batch_source(X_train), held_out, spec, args.image_size,
                            torch.device("cpu"), args.batch_size).float()
    generator = torch.Generator().manual_seed(seed + 1)
    probes = {"train_rows": train_rows, "held_out": held_out}
    for kind in PROBE_KINDS:
        if kind in _safeguard.GLOBAL_KINDS:
            altered = _safeguard.global_anomalies(inputs, generator, kind)
        else:
            altered = _safeguard.synthetic_anomalies(inputs, generator, kinds=(kind,))
        probes[kind] = altered.to(torch.float16)
    return probes


def dump_probes(args, epoch, encoder, spec, precision, features, test, probes, setting):
    """Every epoch's features of the gallery, the test set and each probe kind (float16)."""
    arrays = {"features": features.astype(np.float16), "test": test.astype(np.float16),
              "train_rows": probes["train_rows"], "held_out": probes["held_out"],
              "y_test": args.current_y.astype(np.int8)}
    for kind in PROBE_KINDS:
        arrays[kind] = features_of_inputs(encoder, probes[kind], spec, args.batch_size,
                                          torch.device("cpu"), precision).astype(np.float16)
    folder = args.probes / f"{args.current_task}-{slug(args.current_setting)}"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"epoch{epoch}.npz", **arrays)


def paired_interval(y, scores_a, scores_b, rng) -> tuple[float, float]:
    """95 % bootstrap interval of AUC(a) - AUC(b) in points, resampling test images."""
    normal, other = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    gains = []
    for _ in range(BOOTSTRAP_ROUNDS):
        idx = np.concatenate([rng.choice(normal, len(normal)), rng.choice(other, len(other))])
        gains.append(roc_auc_score(y[idx], scores_a[idx]) - roc_auc_score(y[idx], scores_b[idx]))
    low, high = np.percentile(gains, [2.5, 97.5])
    return round(100 * float(low), 2), round(100 * float(high), 2)


def breakdown(y, scores, extra) -> dict:
    """ELPV: ROC-AUC per severity and per cell type against the held-out normals."""
    out = {}
    if "defect_probability" in extra:
        p = extra["defect_probability"]
        for level in (1 / 3, 2 / 3, 1.0):
            keep = (y == 1) | np.isclose(p, level)
            out[f"severity {level:.2f}"] = float(roc_auc_score(y[keep], scores[keep]))
        for kind in ("mono", "poly"):
            keep = extra["cell_type"] == kind
            out[kind] = float(roc_auc_score(y[keep], scores[keep]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("fashion-mnist", "elpv", "folder"),
                        default="fashion-mnist")
    parser.add_argument("--root", type=Path, help="--dataset folder: train/<class>/*, "
                        "test/<class>/* (e.g. CIFAR-10 as JPEG folders)")
    parser.add_argument("--probes", type=Path, help="also write each epoch's features of "
                        "the gallery, test set and held-out probes here (for epoch_rules.py)")
    parser.add_argument("--classes", type=int, nargs="+", default=[0, 2, 4, 6])
    parser.add_argument("--settings", nargs="+", default=["1e-4:auto"],
                        help="lr:frozen_stages[:angular], e.g. 1e-4:auto 1e-3:6:angular")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=None, help="default: all")
    parser.add_argument("--n-test-per-class", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-neighbors", type=int, default=2)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    (args.out / "scores").mkdir(parents=True, exist_ok=True)
    results = {"args": {k: str(v) for k, v in vars(args).items()},
               "command": " ".join(["python", "-m", "benchmarks.learning_curve",
                                    *(argv or sys.argv[1:])]),
               "curves": []}
    rng = np.random.default_rng(0)
    for name, X_train, X_test, y_test, extra in tasks(args):
        for text in args.settings:
            print(f"{name} {text} ({len(X_train)} train, {len(X_test)} test)", flush=True)
            args.current_task, args.current_setting, args.current_y = name, text, y_test
            record, scores, proxy_scores = curve(X_train, X_test, y_test, parse_setting(text),
                                                 args)
            best = int(np.argmax(record["roc_auc_by_epoch"]))
            record.update(
                task=name, setting=text, n_train=len(X_train), n_test=len(X_test),
                best_epoch=best,
                interval_best_vs_0=paired_interval(y_test, scores[best], scores[0], rng),
                interval_chosen_vs_0=paired_interval(
                    y_test, scores[record["chosen_epoch"]], scores[0], rng),
                breakdown_by_epoch=[breakdown(y_test, s, extra) for s in scores] or None)
            results["curves"].append(record)
            # The held-out proxy's per-image scores too: the safeguard's choice can be
            # recomputed from them under another rule.
            np.savez_compressed(
                args.out / "scores" / f"{name}-{slug(text)}.npz",
                y_test=y_test.astype(np.int8), scores=scores.astype(np.float32),
                proxy_normal=np.stack([p[0] for p in proxy_scores]),
                proxy_anomalous=np.stack([p[1] for p in proxy_scores]))
            print(f"  {name} {text}: ROC-AUC " + " ".join(
                f"{100 * a:.2f}" for a in record["roc_auc_by_epoch"]) + "; proxy " + " ".join(
                f"{100 * a:.1f}" for a in record["proxy_by_epoch"])
                + f"; kept epoch {record['chosen_epoch']}"
                f" ({sum(record['seconds_by_epoch']):.0f} s)", flush=True)
            (args.out / "curves.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
