"""Section ``precision`` of speed.py: float32 NCHW against channels-last and 16-bit
arithmetic, and the ROC-AUC of a Fashion-MNIST fit in each precision."""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skmsc import MeanShiftedContrastiveDetector
from skmsc.datasets import load_fashion_mnist

from ._harness import interleaved, table
from .speed_pipeline import forward_pass, network, random_input, train_step


def section(args, device, out):
    low = "bfloat16" if device.type == "cpu" else "float16"
    variants = [("float32", False), ("float32", True), (low, True)]
    if device.type == "cuda":
        variants.append(("bfloat16", True))
    rows = []
    for name in args.precision_backbones:
        size = args.precision_size
        batch = args.batch_size
        fns = []
        for precision, channels_last in variants:
            encoder = network(name, device, size, channels_last=channels_last).encoder
            views = random_input(2 * batch, size, device, channels_last)
            step = train_step(encoder, precision, device)
            forward = forward_pass(encoder, precision, device)
            images = views[:batch].contiguous(
                memory_format=torch.channels_last if channels_last else torch.contiguous_format
            )
            fns += [lambda s=step, v=views: s(v), lambda f=forward, i=images: f(i)]
        # All variants timed in turn, so that load changes hit them alike.
        times = interleaved(fns, args.repeats, device)
        result = {
            variant: (2 * batch / times[2 * i], batch / times[2 * i + 1])
            for i, variant in enumerate(variants)
        }
        base_train, base_forward = result[("float32", False)]
        for (precision, channels_last), (train, forward) in result.items():
            rows.append(dict(
                backbone=name, size=size, precision=precision,
                layout="channels-last" if channels_last else "NCHW",
                train=train, forward=forward, train_speedup=train / base_train,
                forward_speedup=forward / base_forward,
            ))
            print(f"  {name} {precision} {rows[-1]['layout']}: train x"
                  f"{rows[-1]['train_speedup']:.2f} forward x{rows[-1]['forward_speedup']:.2f}",
                  flush=True)
    text = table(
        f"Precision and layout ({device.type}, {args.precision_size}px, batch "
        f"{args.batch_size}, median of {args.repeats})",
        ["backbone", "precision", "layout", "train views/s", "speed-up", "forward img/s",
         "speed-up"],
        [[r["backbone"], r["precision"], r["layout"], r["train"], r["train_speedup"],
          r["forward"], r["forward_speedup"]] for r in rows],
    )
    auc_rows = _precision_auc(args, device)
    out["precision"] = {"speed": rows, "auc": auc_rows}
    text += "\n" + table(
        f"ROC-AUC by precision (Fashion-MNIST class {args.auc_class}, EfficientNet-Lite0 "
        f"ImageNet weights, {args.auc_train} training images, {args.auc_epochs} epochs, "
        f"{args.auc_size}px, {args.auc_test} test images)",
        ["precision", "fine-tuning in", "features in", "ROC-AUC (%)", "change (points)",
         "fit s", "score s"],
        [[r["precision"], r["resolved"]["fine_tuning"], r["resolved"]["features"], r["auc"],
          r["change"], r["fit_s"], r["score_s"]] for r in auc_rows],
    )
    return text


def _precision_auc(args, device):
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    X_train = train.images[train.labels == args.auc_class][: args.auc_train]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(test), args.auc_test, replace=False)
    X_test, y_test = test.images[pick], (test.labels[pick] == args.auc_class).astype(int)
    rows = []
    for precision in args.auc_precisions:
        det = MeanShiftedContrastiveDetector(
            "efficientnet_lite0", epochs=args.auc_epochs, batch_size=args.batch_size,
            image_size=args.auc_size, precision=precision, device=str(device),
            random_state=0,
        )
        start = time.perf_counter()
        det.fit(X_train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        auc = 100 * roc_auc_score(y_test, det.score_samples(X_test))
        rows.append(dict(precision=precision, resolved=det.precision_, auc=auc, fit_s=fit_s,
                         score_s=time.perf_counter() - start))
        print(f"  ROC-AUC {precision}: {auc:.2f}", flush=True)
    for row in rows:
        row["change"] = row["auc"] - rows[0]["auc"]
    return rows
