"""ROC-AUC after every epoch of mean-shifted fine-tuning, for choosing a short schedule.

One training run per (class, setting) gives the whole curve: epoch 0 is the pretrained
kNN baseline, epoch e the network after e epochs. The protocol is the paper's (fit on
one class's training images, score a test set, "normal" = that class) on a seeded
subsample, so settings can be compared on the same images. Settings are given as
``lr:frozen_stages[:angular]`` triples; results go to ``--out`` as JSON.

Example (the pilot behind the ``cpu`` size of ``reproduce.py``; every file under
``benchmarks/results/curves/`` records its arguments)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/learning_curve.py --classes 0 6 \\
        --settings 3e-3:6 3e-3:6:angular --n-train 3000 --epochs 3 \\
        --n-test-per-class 300 --out benchmarks/results/curves/64px-3000img.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its threads

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from skmsc import datasets as skds  # noqa: E402
from skmsc.neighbors import ExactIndex, knn_scores  # noqa: E402
from skmsc.nn._runtime import resolve_precision  # noqa: E402
from skmsc.nn._training import extract_features, fine_tune  # noqa: E402
from skmsc.nn.backbones import build_backbone, freeze_stages  # noqa: E402
from skmsc.nn.model import MeanShiftedEncoder  # noqa: E402


def parse_setting(text: str) -> dict:
    parts = text.split(":")
    return {"learning_rate": float(parts[0]), "frozen_stages": int(parts[1]),
            "angular": len(parts) > 2 and parts[2] in ("1", "angular", "true")}


def auc_of(encoder, train, X_test, y_test, extract, n_neighbors):
    """ROC-AUC of the kNN score against the training features ``train``."""
    test = extract_features(encoder, X_test, **extract)
    scores = knn_scores(ExactIndex(train), test, n_neighbors)
    return float(roc_auc_score(y_test, scores))


def curve(X_train, X_test, y_test, setting, args, device) -> dict:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        backbone, spec = build_backbone(args.backbone)
    freeze_stages(backbone, args.backbone, setting["frozen_stages"])
    encoder = MeanShiftedEncoder(backbone).eval().to(device, memory_format=torch.channels_last)
    extract = dict(spec=spec, image_size=args.image_size, batch_size=64, device=device,
                   precision=resolve_precision("auto", device, training=False))
    pretrained = extract_features(encoder, X_train, **extract)
    center = pretrained.mean(axis=0)
    if setting["angular"]:
        center = center / np.linalg.norm(center)
    order_rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    # Epoch 0 is the pretrained network, whose training features are already at hand.
    aucs = [auc_of(encoder, pretrained, X_test, y_test, extract, args.n_neighbors)]
    losses, seconds = [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        losses += fine_tune(
            encoder, X_train, torch.from_numpy(center), spec=spec, image_size=args.image_size,
            epochs=1, batch_size=args.batch_size, learning_rate=setting["learning_rate"],
            weight_decay=5e-5, temperature=0.25, angular=setting["angular"], device=device,
            order_rng=order_rng, augment_generator=generator,
            precision=resolve_precision("auto", device, training=True))
        seconds.append(round(time.perf_counter() - start, 1))
        train = extract_features(encoder, X_train, **extract)
        aucs.append(auc_of(encoder, train, X_test, y_test, extract, args.n_neighbors))
    return {**setting, "roc_auc_by_epoch": aucs, "loss_by_epoch": losses,
            "train_seconds_by_epoch": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[0, 2, 4, 6])
    parser.add_argument("--settings", nargs="+", default=["1e-3:4"],
                        help="lr:frozen_stages[:angular], e.g. 1e-3:4 3e-3:6:angular")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test-per-class", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-neighbors", type=int, default=2)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crop-scale", type=float, nargs=2, default=(0.2, 1.0),
                        help="RandomResizedCrop area range (the paper's: 0.2 1.0)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    device = torch.device("cpu")
    if tuple(args.crop_scale) != (0.2, 1.0):
        import functools

        import skmsc.nn._training

        skmsc.nn._training.random_views = functools.partial(
            skmsc.nn._training.random_views, scale=tuple(args.crop_scale))
    train, test = skds.load_fashion_mnist("train"), skds.load_fashion_mnist("test")
    test = skds.subsample(test, args.n_test_per_class, random_state=args.seed)
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "curves": []}
    for c in args.classes:
        X_train, X_test, y_test = skds.one_class_split(train, test, c)
        rng = np.random.default_rng([args.seed, c])
        X_train = X_train[np.sort(rng.choice(len(X_train), args.n_train, replace=False))]
        for text in args.settings:
            record = {"class_index": c, "class": train.class_names[c],
                      **curve(X_train, X_test, y_test, parse_setting(text), args, device)}
            results["curves"].append(record)
            print(f"class {c} {text:14} " + " ".join(
                f"{100 * a:.2f}" for a in record["roc_auc_by_epoch"])
                + f"  ({sum(record['train_seconds_by_epoch']):.0f} s)", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
