"""Do the anomaly maps point at the anomaly? Synthetic defects with known masks, measured.

One detector is fitted per data set on normal images. Held-out normal images get one
synthetic local defect each (a patch cut from another held-out image, a scar or a blob in
the colour of another image's pixel: ``skmsc.nn._safeguard.synthetic_anomalies`` with
``LOCAL_KINDS``, the generator the fine-tuning safeguard uses). The ground truth of an
image is the set of pixels the defect changed by at least ``--min-change`` of the pixel
range (a patch of background pasted onto background changes nothing and is not a
defect); images whose defect changed fewer than ``--min-pixels`` pixels are left out and
counted. Each map method then explains the defective images, and per method:

- pixel ROC-AUC: every pixel of every image pooled (anomalib's pixel AUROC), and the mean
  of the per-image AUCs;
- pointing game: the fraction of images whose map maximum lies inside the ground truth
  (a flat map, all 0, points at its first pixel); chance is the mean ground-truth area;
- seconds per image: wall time of ``det.anomaly_maps`` over the images, divided by
  their number (noisy under load: the load average is recorded).

Paired bootstrap intervals (images resampled) compare the methods. ``--image-size``
takes several sizes: the data are loaded once and one detector is fitted per size.
Results go to ``--out/<dataset>-<size>px.json``; ``--report`` turns every JSON there into
the table of ``docs/guide/anomaly_maps_results.txt`` (included by
``docs/guide/anomaly_maps.rst``), one row per data set, image size and method.

The committed results::

    python -m benchmarks.anomaly_maps --dataset fashion-mnist --image-size 64 128 224 \
        --methods patch layercam gradient
    python -m benchmarks.anomaly_maps --dataset elpv --image-size 64 128 224 \
        --methods patch layercam gradient
    python -m benchmarks.anomaly_maps --report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from skmsc import MeanShiftedContrastiveDetector

from ._harness import environment

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "anomaly-maps"
DEFAULT_TABLE = ROOT / "docs" / "guide" / "anomaly_maps_results.txt"
#: method name -> (anomaly_maps method, occlusion fill)
METHODS = {
    "patch": ("patch", "mean"),
    "gradient": ("gradient", "mean"),
    "layercam": ("layercam", "mean"),
    "occlusion": ("occlusion", "mean"),
    "occlusion-blur": ("occlusion", "blur"),
}
BOOTSTRAP_ROUNDS = 2000


def load_normals(dataset: str, n_train: int, n_test: int, normal_class: int):
    """(training normals, held-out normals) as uint8 ``(n, H, W)`` arrays."""
    from skmsc import datasets

    if dataset == "fashion-mnist":
        train, test = datasets.load_fashion_mnist("train"), datasets.load_fashion_mnist("test")
        X_train = train.images[train.labels == normal_class][:n_train]
        X_held_out = test.images[test.labels == normal_class][:n_test]
        return X_train, X_held_out
    split = datasets.load_elpv()  # fit on 60 % of the defect-free cells (seed 0)
    return split.X_train[:n_train], split.X_test[split.y_test == 1][:n_test]


def paste_defects(X: np.ndarray, seed: int, min_change: float, min_pixels: int):
    """(defective images, ground-truth masks, rows of X kept) for grayscale uint8 ``X``."""
    import torch

    from skmsc.nn._safeguard import LOCAL_KINDS, synthetic_anomalies

    images = torch.from_numpy(X.astype(np.float32) / 255.0)[:, None].expand(-1, 3, -1, -1)
    out, _ = synthetic_anomalies(images.contiguous(), torch.Generator().manual_seed(seed),
                                 kinds=LOCAL_KINDS, return_masks=True)
    defective = np.round(out[:, 0].numpy() * 255.0).astype(np.uint8)  # grey stays grey
    changed = np.abs(defective.astype(np.int16) - X) >= min_change * 255
    keep = changed.reshape(len(X), -1).sum(axis=1) >= min_pixels
    return defective[keep], changed[keep], np.flatnonzero(keep)


def map_metrics(maps: np.ndarray, truth: np.ndarray) -> dict:
    """Pixel ROC-AUC (pooled and per image) and pointing-game hits of maps against masks."""
    from sklearn.metrics import roc_auc_score

    n = len(maps)
    flat_maps, flat_truth = maps.reshape(n, -1), truth.reshape(n, -1)
    per_image_auc = np.array([roc_auc_score(t, m) for m, t in zip(flat_maps, flat_truth,
                                                                   strict=True)])
    hits = flat_truth[np.arange(n), flat_maps.argmax(axis=1)]
    return {
        "pixel_roc_auc": float(roc_auc_score(flat_truth.ravel(), flat_maps.ravel())),
        "per_image_roc_auc": per_image_auc.tolist(),
        "mean_per_image_roc_auc": float(per_image_auc.mean()),
        "pointing_hits": hits.astype(int).tolist(),
        "pointing_game": float(hits.mean()),
        "flat_maps": int((flat_maps.max(axis=1) <= 0).sum()),
    }


def paired_interval(a, b, seed: int = 0) -> list[float]:
    """95 % bootstrap interval of ``mean(a) - mean(b)`` (images resampled, pairs kept)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(a), size=(BOOTSTRAP_ROUNDS, len(a)))
    differences = a[rows].mean(axis=1) - b[rows].mean(axis=1)
    return np.percentile(differences, [2.5, 97.5]).tolist()


def run(args, image_size: int, data) -> dict:
    """The measurement at one ``image_size``; ``data`` is ``(X_train, X_held_out)``."""
    import torch
    from sklearn.metrics import roc_auc_score

    from skmsc.nn._explain import to_input_resolution

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    X_train, X_held_out = data
    defective, truth, rows = paste_defects(X_held_out, args.seed, args.min_change,
                                           args.min_pixels)
    params = dict(backbone="efficientnet_lite0", image_size=image_size,
                  epochs=args.epochs, batch_size=args.batch_size, precision=args.precision,
                  random_state=args.seed)
    if args.epochs:
        params.update(learning_rate=args.learning_rate)
    detector = MeanShiftedContrastiveDetector(**params)
    start = time.perf_counter()
    detector.fit(X_train)
    fit_seconds = time.perf_counter() - start
    clean = detector.decision_function(X_held_out[rows])
    scored = detector.decision_function(defective)
    network = detector._network()
    # The pixels the network sees (the evaluation transform's central crop).
    side = detector.image_size_
    inside = to_input_resolution(torch.ones(side, side), *X_held_out.shape[1:3],
                                 detector.backbone_spec_, side) > 0.5
    flagged = scored < 0
    results = {}
    for name in args.methods:
        method, fill = METHODS[name]
        start = time.perf_counter()
        maps = np.stack(network.anomaly_maps(
            defective, index=detector._index, n_neighbors=detector.n_neighbors,
            patches=detector.reference_patches_, method=method, batch_size=args.batch_size,
            precision=args.precision, fill=fill,
        ))
        seconds = time.perf_counter() - start
        metrics = map_metrics(maps, truth)
        hits = np.asarray(metrics["pointing_hits"])
        metrics.update(
            seconds_per_image=seconds / len(defective),
            pointing_game_flagged=float(hits[flagged].mean()) if flagged.any() else None,
        )
        results[name] = metrics
        print(f"{args.dataset} {image_size} px {name}: pixel ROC-AUC "
              f"{metrics['pixel_roc_auc']:.3f}, "
              f"per image {metrics['mean_per_image_roc_auc']:.3f}, pointing "
              f"{metrics['pointing_game']:.3f}, {seconds / len(defective):.3f} s/image",
              flush=True)
    comparisons = {}
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            comparisons[f"{a} - {b}"] = {
                "mean_per_image_roc_auc": paired_interval(
                    results[a]["per_image_roc_auc"], results[b]["per_image_roc_auc"]),
                "pointing_game": paired_interval(
                    results[a]["pointing_hits"], results[b]["pointing_hits"]),
            }
    return {
        "dataset": args.dataset,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "-m", "benchmarks.anomaly_maps", *sys.argv[1:]]),
        "detector": {**detector.get_params(), "precision_": detector.precision_,
                     "best_epoch_": detector.best_epoch_},
        "n_train": len(X_train),
        "n_held_out": len(X_held_out),
        "n_defective": len(defective),
        "n_left_out": len(X_held_out) - len(defective),
        "image_shape": list(X_held_out.shape[1:]),
        "min_change": args.min_change,
        "min_pixels": args.min_pixels,
        "chance_pointing": float(truth.reshape(len(truth), -1).mean(axis=1).mean()),
        "truth_outside_crop": float(truth[:, ~inside].sum() / truth.sum()),
        "image_roc_auc": float(roc_auc_score(np.r_[np.ones(len(clean)), np.zeros(len(scored))],
                                             np.r_[clean, scored])),
        "n_flagged": int(flagged.sum()),
        "fit_seconds": fit_seconds,
        "methods": results,
        "comparisons": comparisons,
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "environment": environment(str(detector.device_)),
    }


# ---------------------------------------------------------------------------- report
LABELS = {
    "patch": "patch: distance to the nearest normal patch",
    "gradient": "gradient (Grad-CAM)",
    "layercam": "LayerCAM, stages from stride 4",
    "occlusion": "occlusion, mean-colour patch",
    "occlusion-blur": "occlusion, blurred patch",
}
DATASET_LABELS = {"fashion-mnist": "Fashion-MNIST", "elpv": "ELPV solar cells"}


def _interval(values) -> str:
    return f"[{values[0]:+.3f}, {values[1]:+.3f}]"


def report(out: Path, table: Path) -> str:
    """The results table (reStructuredText) of every ``<dataset>.json`` in ``out``."""
    payloads = [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]
    if not payloads:
        raise SystemExit(f"no results in {out}: run a data set first")
    payloads.sort(key=lambda p: (p["dataset"], p["detector"]["image_size"]))
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - data set",
        "     - image_size",
        "     - method",
        "     - pixel ROC-AUC (pooled)",
        "     - pixel ROC-AUC (mean per image)",
        "     - pointing game (chance)",
        "     - seconds per image",
    ]
    notes = []
    for payload in payloads:
        name = DATASET_LABELS.get(payload["dataset"], payload["dataset"])
        for method, metrics in payload["methods"].items():
            lines += [
                f"   * - {name}",
                f"     - {payload['detector']['image_size']}",
                f"     - {LABELS.get(method, method)}",
                f"     - {metrics['pixel_roc_auc']:.3f}",
                f"     - {metrics['mean_per_image_roc_auc']:.3f}",
                f"     - {metrics['pointing_game']:.3f} ({payload['chance_pointing']:.3f})",
                f"     - {metrics['seconds_per_image']:.3f}",
            ]
        params = payload["detector"]
        comparisons = "; ".join(
            f"{pair}: per-image AUC {_interval(c['mean_per_image_roc_auc'])}, pointing "
            f"{_interval(c['pointing_game'])}"
            for pair, c in payload["comparisons"].items()
        )
        load = payload["load_average"]
        notes.append(
            f"- **{name}, image_size {params['image_size']}**: {payload['n_defective']} "
            f"defective images "
            f"({payload['n_left_out']} of {payload['n_held_out']} held-out normals left out: "
            f"their defect changed fewer than {payload['min_pixels']} pixels by "
            f">= {payload['min_change']:.0%}), images {payload['image_shape']}; detector "
            f"EfficientNet-Lite0, image_size {params['image_size']}, epochs "
            f"{params['epochs']}, fitted on {payload['n_train']} normal images, features in "
            f"{params['precision_']['features']}; image-level ROC-AUC of the defective "
            f"against the same images clean {payload['image_roc_auc']:.3f}, "
            f"{payload['n_flagged']} defective images flagged; "
            f"{payload['truth_outside_crop']:.1%} of the defect pixels lie outside the "
            f"network's crop. Paired 95 % bootstrap intervals of the differences: "
            f"{comparisons}. Load average {load['start'][0]:.1f} at the start, "
            f"{load['end'][0]:.1f} at the end. Command: ``{payload['command']}``."
        )
    text = "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"
    table.write_text(text)
    return text


def main(argv=None) -> dict | str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["fashion-mnist", "elpv"])
    parser.add_argument("--report", action="store_true",
                        help="write the table of every result in --out and stop")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=300,
                        help="held-out normal images that get a defect")
    parser.add_argument("--normal-class", type=int, default=0,
                        help="Fashion-MNIST class used as normal (0: T-shirt/top)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--image-size", type=int, nargs="+", default=[224],
                        help="one or more sizes: a detector is fitted for each")
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--min-change", type=float, default=0.1)
    parser.add_argument("--min-pixels", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.report:
        text = report(args.out, args.table)
        print(text)
        return text
    if args.dataset is None:
        parser.error("--dataset is required (or --report)")
    data = load_normals(args.dataset, args.n_train, args.n_test, args.normal_class)
    args.out.mkdir(parents=True, exist_ok=True)
    payloads = []
    for image_size in args.image_size:
        payload = run(args, image_size, data)
        path = args.out / f"{args.dataset}-{image_size}px.json"
        path.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {path}", flush=True)
        payloads.append(payload)
    return payloads[0] if len(payloads) == 1 else payloads


if __name__ == "__main__":
    main()
