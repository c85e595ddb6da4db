"""Memory under repeated fits (soak) and while scoring huge images.

Usage::

    python benchmarks/reliability.py soak        # RSS after repeated fit/score cycles
    python benchmarks/reliability.py huge        # peak RSS, 16 images of 2048x2048

Prints what it measured; nothing is written.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its threads

import argparse  # noqa: E402
import gc  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import skmsc.nn._training as training  # noqa: E402
from skmsc import MeanShiftedContrastiveDetector  # noqa: E402


def current_rss_mib() -> float:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(keep_alive: bool) -> None:
    kept = []
    rng = np.random.default_rng(0)
    samples = []
    for i in range(50):
        features = rng.normal(size=(600, 64))
        det = MeanShiftedContrastiveDetector(random_state=i).fit(features)
        det.score_samples(features[:100])
        if keep_alive:
            kept.append(det)
        if i % 10 == 9:
            samples.append(current_rss_mib())
    print(f"feature fits: RSS after every 10 cycles (MiB) {np.round(samples, 1).tolist()}; "
          f"growth {samples[-1] - samples[0]:+.1f} MiB")
    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 8, 8) / 16
    samples = []
    for i in range(10):
        det = MeanShiftedContrastiveDetector(
            "efficientnet_lite0", weights=None, epochs=1, batch_size=8, image_size=16,
            random_state=i,
        ).fit(X[y == i][:8])
        det.score_samples(X[-20:])
        if keep_alive:
            kept.append(det)
        if i in (2, 9):
            samples.append(current_rss_mib())
    print(f"image fits: RSS after fit 3 and fit 10 (MiB) {np.round(samples, 1).tolist()}; "
          f"growth {samples[-1] - samples[0]:+.1f} MiB")


def huge(unbounded: bool) -> None:
    if unbounded:
        training.EXTRACT_FLOAT_BUDGET_BYTES = 2**62
    X = np.random.default_rng(0).integers(0, 256, size=(16, 2048, 2048), dtype=np.uint8)
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", weights=None, epochs=0, batch_size=16, image_size=32,
        n_neighbors=1, random_state=0,
    )
    start = time.perf_counter()
    det.fit(X)
    det.score_samples(X[:4])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    budget = "no budget" if unbounded else "256 MiB float budget"
    print(f"16 x 2048x2048 uint8 images, {budget}: peak RSS {peak:.0f} MiB, "
          f"fit+score {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["soak", "huge"])
    parser.add_argument("--leak", action="store_true",
                        help="soak: keep every detector alive (shows what a leak looks like)")
    parser.add_argument("--unbounded", action="store_true",
                        help="huge: disable the scoring memory budget, for comparison")
    args = parser.parse_args()
    soak(args.leak) if args.what == "soak" else huge(args.unbounded)


if __name__ == "__main__":
    main()
