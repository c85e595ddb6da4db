"""Does the threshold of a reduced gallery flag the fraction of new normals it is asked to?

``contamination`` promises the fraction of *new normal* samples flagged; ``offset_`` is
that quantile of the training samples' leave-one-out scores. With ``gallery_size`` the
leave-one-out score of a training sample is an estimate (see ``skmsc/_gallery.py``), so
this measures it. For each ``--classes`` Fashion-MNIST class, the pretrained
EfficientNet-Lite0 features of the first ``--n-fit`` training images of the class fit
:class:`skmsc.KNNDetector` (whole gallery, and each reduction at each ``--fractions``);
the held-out normals are the class's other training images and its 1,000 test images.
Printed per setting and ``contamination``: the fraction of held-out normals flagged and
its 95 % Wilson interval, and that fraction divided by the one asked for.

    python -m benchmarks.gallery_threshold \
        --out benchmarks/results/gallery-threshold

Writes ``results.json`` and ``results.md`` (the table, as printed) to ``--out``.
"""

from __future__ import annotations

import argparse

import numpy as np

from skmsc import KNNDetector, MeanShiftedFeatures
from skmsc.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

from ._harness import floats, ints, load_average, names, table, write_results


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--classes", type=ints,
                   default=[0, 2, 6, 9])
    p.add_argument("--fractions", type=floats, default=[0.1, 0.01])
    p.add_argument("--reductions", type=names, default=["kmeans", "coreset"])
    p.add_argument("--contaminations", type=floats, default=[0.01, 0.05, 0.1, 0.2])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n-fit", type=int, default=4000,
                   help="training images of the class that fit; the rest are held out")
    p.add_argument("--n-images", type=int, default=None,
                   help="images of the class read from each split (default: all)")
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def wilson_interval(flagged: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    p = flagged / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def main(argv=None):
    args = parse_args(argv)
    train_set, test_set = load_fashion_mnist("train"), load_fashion_mnist("test")
    network = MeanShiftedFeatures("efficientnet_lite0", epochs=0, image_size=args.image_size,
                                  random_state=0).fit(test_set.images[:64])
    settings = [("whole", None, "kmeans")] + [
        (f"{reduction} {fraction:g}", fraction, reduction)
        for reduction in args.reductions for fraction in args.fractions
    ]
    out = {"args": vars(args), "load_average_start": load_average(), "rows": []}
    rows = []
    for label in args.classes:
        print(f"== class {label} ({FASHION_MNIST_CLASSES[label]})", flush=True)
        train = network.transform(train_set.images[train_set.labels == label][: args.n_images])
        test = network.transform(test_set.images[test_set.labels == label][: args.n_images])
        fit, held_out = train[: args.n_fit], np.concatenate([train[args.n_fit:], test])
        for name, fraction, reduction in settings:
            det = KNNDetector(gallery_size=fraction, gallery_reduction=reduction,
                              knn_algorithm="exact", random_state=0).fit(fit)
            scores = det.score_samples(held_out)
            for contamination in args.contaminations:
                det.set_threshold(contamination)
                flagged = int((scores < det.offset_).sum())
                low, high = wilson_interval(flagged, len(held_out))
                rate = flagged / len(held_out)
                out["rows"].append({
                    "class": label, "setting": name, "gallery": len(det.gallery_),
                    "contamination": contamination, "held_out": len(held_out),
                    "flagged": flagged, "rate": rate, "interval": [low, high],
                })
                rows.append([FASHION_MNIST_CLASSES[label], name, len(det.gallery_),
                             f"{100 * contamination:g} %",
                             f"{100 * rate:.2f} % [{100 * low:.2f}, {100 * high:.2f}]",
                             f"{rate / contamination:.2f}"])
    out["load_average_end"] = load_average()
    text = table(
        f"Held-out normals flagged by the threshold, Fashion-MNIST, EfficientNet-Lite0 "
        f"pretrained features at {args.image_size} px (fit on {args.n_fit} images a class; "
        f"held out: the class's other training and its test images)",
        ["class", "gallery", "vectors", "contamination asked",
         "held-out normals flagged [95 %]", "flagged / asked"], rows,
    )
    print(text)
    if args.out:
        write_results(args.out, out, text)


if __name__ == "__main__":
    main()
