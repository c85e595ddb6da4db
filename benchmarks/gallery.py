"""What ``gallery_size`` costs and buys: ROC-AUC, threshold and speed on Fashion-MNIST.

For each ``--classes`` class (one-class protocol: fit on that class's 6,000 training
images, test on the 10,000 test images, the class is "normal"), the pretrained
EfficientNet-Lite0 features (``MeanShiftedFeatures``, ``epochs=0``, ``--image-size`` px)
are fitted by :class:`skmsc.KNNDetector` with the whole gallery and with
``gallery_size`` = each ``--fractions`` entry, for each ``gallery_reduction``. Printed
per setting:

- ROC-AUC (normal = positive) and its change from the whole gallery, with a 95 %
  paired bootstrap interval over test images;
- the fraction of the normal *test* images flagged by ``offset_`` (``contamination``
  "auto" asks for 1 %): whether the leave-one-out threshold stays calibrated on a
  reduced gallery;
- the kNN search time of the 10,000 test features (median of ``--repeats``, interleaved
  across settings) and its speed-up, and the end-to-end scoring speed-up including the
  network (its time measured once on the test images);
- the time ``fit`` takes to reduce the gallery.

And once: ``partial_fit`` of 100 feature vectors onto a whole class gallery.

    python -m benchmarks.gallery \
        --out benchmarks/results/gallery

Writes ``results.json`` and ``results.md`` (the tables, as printed) to ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import numpy as np
from sklearn.metrics import roc_auc_score

from skmsc import KNNDetector, MeanShiftedFeatures
from skmsc.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

from ._harness import floats, ints, load_average, names, table, write_results


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--classes", type=ints,
                   default=[0, 2, 6, 9])
    p.add_argument("--fractions", type=floats,
                   default=[0.1, 0.01])
    p.add_argument("--reductions", type=names, default=["kmeans", "coreset"])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n-train", type=int, default=None, help="training images per class "
                   "(default: all 6,000)")
    p.add_argument("--n-test", type=int, default=None, help="test images (default: 10,000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def bootstrap_interval(y, scores, reference, n_resamples, seed=0):
    """95 % interval of AUC(scores) - AUC(reference) over resampled test images."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_resamples):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue
        diffs.append(roc_auc_score(y[rows], scores[rows])
                     - roc_auc_score(y[rows], reference[rows]))
    return tuple(float(v) for v in np.percentile(diffs, [2.5, 97.5])) if diffs else (0.0, 0.0)


def class_rows(label, train, test, network_seconds, args, out):
    y = (test.labels == label).astype(int)
    settings = [("whole", None, "kmeans")] + [
        (f"{reduction} {fraction:g}", fraction, reduction)
        for reduction in args.reductions for fraction in args.fractions
    ]
    fitted = []
    for name, fraction, reduction in settings:
        start = time.perf_counter()
        det = KNNDetector(gallery_size=fraction, gallery_reduction=reduction,
                          knn_algorithm="exact", random_state=0).fit(train)
        fitted.append((name, det, time.perf_counter() - start))
    # kNN search of the test features, interleaved over settings.
    times = [[] for _ in fitted]
    scores = [det.score_samples(test.features) for _, det, _ in fitted]  # warm-up
    for _ in range(args.repeats):
        for (_, det, _), record in zip(fitted, times, strict=True):
            start = time.perf_counter()
            det.score_samples(test.features)
            record.append(time.perf_counter() - start)
    search = [statistics.median(t) for t in times]
    whole_auc = roc_auc_score(y, scores[0])
    rows = []
    for (name, det, fit_seconds), s, seconds in zip(fitted, scores, search, strict=True):
        auc = roc_auc_score(y, s)
        low, high = bootstrap_interval(y, s, scores[0], args.bootstrap) if s is not scores[0] \
            else (0.0, 0.0)
        flagged = float((s[y == 1] < det.offset_).mean())
        end_to_end = (network_seconds + search[0]) / (network_seconds + seconds)
        record = {
            "class": label, "class_name": FASHION_MNIST_CLASSES[label], "setting": name,
            "gallery": len(det.gallery_), "roc_auc": auc, "auc_change": auc - whole_auc,
            "auc_change_interval": [low, high], "normal_test_flagged": flagged,
            "knn_search_s": seconds, "knn_speedup": search[0] / seconds,
            "end_to_end_speedup": end_to_end, "fit_s": fit_seconds,
        }
        out["rows"].append(record)
        rows.append([FASHION_MNIST_CLASSES[label], name, len(det.gallery_), 100 * auc,
                     f"{100 * (auc - whole_auc):+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]",
                     f"{100 * flagged:.2f} %", seconds, record["knn_speedup"], end_to_end,
                     fit_seconds])
    return rows


def main(argv=None):
    args = parse_args(argv)
    train_set, test_set = load_fashion_mnist("train"), load_fashion_mnist("test")
    test_images = test_set.images[: args.n_test]
    features = MeanShiftedFeatures("efficientnet_lite0", epochs=0, image_size=args.image_size,
                                   random_state=0)
    out = {"args": vars(args), "load_average_start": load_average(), "rows": []}
    features.fit(test_images[:64])  # the network only: epochs=0 trains nothing
    start = time.perf_counter()
    test_features = features.transform(test_images)
    network_seconds = time.perf_counter() - start
    test = SimpleNamespace(features=test_features, labels=test_set.labels[: args.n_test])
    all_rows = []
    for label in args.classes:
        print(f"== class {label} ({FASHION_MNIST_CLASSES[label]})", flush=True)
        train = features.transform(
            train_set.images[train_set.labels == label][: args.n_train])
        all_rows += class_rows(label, train, test, network_seconds, args, out)
    # partial_fit: 100 more vectors onto the last class's whole gallery.
    det = KNNDetector(knn_algorithm="exact").fit(train)
    start = time.perf_counter()
    det.partial_fit(test.features[:100])
    out["partial_fit_100_onto"] = [len(train), time.perf_counter() - start]
    out["network_seconds"] = network_seconds
    out["load_average_end"] = load_average()
    text = table(
        f"gallery_size on Fashion-MNIST, EfficientNet-Lite0 pretrained features at "
        f"{args.image_size} px ({len(test.labels)} test images; kNN search median of "
        f"{args.repeats}; load average {out['load_average_start'][0]:.2f} at start, "
        f"{out['load_average_end'][0]:.2f} at end)",
        ["class", "gallery", "vectors", "ROC-AUC %", "change, points [95 % interval]",
         "normal test flagged (asked 1 %)", "kNN search s", "kNN speed-up",
         "end-to-end speed-up", "fit s"], all_rows,
    )
    text += (f"\nNetwork time for the {len(test.labels)} test images: {network_seconds:.1f} s. "
             f"partial_fit of 100 vectors onto {len(train)}: "
             f"{out['partial_fit_100_onto'][1]:.2f} s.\n")
    print(text)
    if args.out:
        write_results(args.out, out, text)


if __name__ == "__main__":
    main()
