"""Reliability: the classes of failure of issue #16, memory under soak, huge images.

Usage::

    python -m benchmarks.reliability table       # cases tried / handled per class (#16)
    python -m benchmarks.reliability decode      # peak RSS decoding an 8000x8000 PNG
    python -m benchmarks.reliability soak        # RSS after repeated fit/score cycles
    python -m benchmarks.reliability huge        # peak RSS, 16 images of 2048x2048

``table`` runs the cases of ``reliability_cases.py`` (each class in a process of its own,
so that a crash or a hang counts against its class only) and prints, per class, how many
cases were tried and how many were handled. Run it with ``PYTHONPATH=other/checkout`` to
measure another version of skmsc with the same cases. Prints what it measured; nothing
is written outside a temporary folder.
"""

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def current_rss_mib() -> float:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(keep_alive: bool) -> None:
    from sklearn.datasets import load_digits

    from skmsc import MeanShiftedContrastiveDetector

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
    import skmsc.nn._training as training
    from skmsc import MeanShiftedContrastiveDetector

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


def run_class(index: int) -> None:
    """Child process of ``table``: run one class's cases, one line per case."""
    from . import reliability_cases

    with tempfile.TemporaryDirectory(prefix="skmsc-reliability-") as folder:
        workdir = Path(folder)
        _, _, make = reliability_cases.CLASSES[index]
        cases = make(workdir)
        print(f"TOTAL {len(cases)}", flush=True)
        for name, case in cases:
            try:
                handled = bool(case(workdir))
            except Exception:  # noqa: BLE001 - an unexpected error is not handled
                handled = False
            print(f"{'+' if handled else '-'} {name!r}", flush=True)


def table(show: int) -> None:
    import skmsc

    from . import reliability_cases

    totals = {}
    for index, (number, name, _) in enumerate(reliability_cases.CLASSES):
        try:
            done = subprocess.run([sys.executable, "-m", "benchmarks.reliability", "_class",
                                   str(index)], capture_output=True, text=True,
                                  timeout=1800, cwd=Path(__file__).resolve().parents[1])
            lines, status = done.stdout.splitlines(), done.returncode
        except subprocess.TimeoutExpired as exc:
            lines, status = (exc.stdout or b"").decode().splitlines(), "timeout"
        tried = next((int(line.split()[1]) for line in lines if line.startswith("TOTAL")), 0)
        results = [line for line in lines if line[:2] in ("+ ", "- ")]
        entry = totals.setdefault(number, [name, 0, 0, [], []])
        entry[1] += max(tried, len(results), 1 if status else 0)
        entry[2] += sum(line.startswith("+") for line in results)
        entry[3] += [line[2:] for line in results if line.startswith("-")]
        if status:
            missing = max(tried, 1) - len(results)
            entry[4].append(f"{missing} case(s) not run: the process ended with {status}")
    print(f"skmsc {skmsc.__version__} from {Path(skmsc.__file__).parent}")
    print(f"{'#':>3}  {'class':<30} {'tried':>6} {'handled':>8}")
    for number, (name, tried, handled, failed, notes) in sorted(totals.items()):
        print(f"{number:>3}  {name:<30} {tried:>6} {handled:>8}")
        for line in failed[:show] + notes:
            print(f"{'':>5}not handled: {line}")
        if len(failed) > show:
            print(f"{'':>5}... and {len(failed) - show} more")
    all_tried = sum(entry[1] for entry in totals.values())
    all_handled = sum(entry[2] for entry in totals.values())
    print(f"{'':>3}  {'all classes':<30} {all_tried:>6} {all_handled:>8}")


def decode(size: int) -> None:
    """Peak RSS of decoding (and of scoring) one large PNG, and of two in two threads."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="skmsc-decode-") as folder:
        path = Path(folder) / "large.png"
        pattern = (np.indices((size, size)).sum(axis=0) % 251).astype(np.uint8)
        Image.fromarray(np.stack([pattern, pattern.T, 255 - pattern], axis=-1)).save(
            path, compress_level=1)
        decoded = size * size * 3
        print(f"{size}x{size} RGB PNG ({path.stat().st_size / 2**20:.0f} MiB file, "
              f"{decoded / 2**20:.0f} MiB of pixels); peak RSS above the start, fresh process:")
        for label, code in [
            ("decode_image, one thread", "decode_image(path)"),
            ("decode_image, two threads at once",
             "threads = [threading.Thread(target=decode_image, args=(path,)) for _ in "
             "range(2)]\n[t.start() for t in threads]\n[t.join() for t in threads]"),
            ("scoring it (EfficientNet-Lite0, 64 px)",
             "from skmsc import MeanShiftedContrastiveDetector\n"
             "import numpy as np\n"
             "det = MeanShiftedContrastiveDetector('efficientnet_lite0', weights=None, "
             "epochs=0, image_size=64, batch_size=2, n_neighbors=1, random_state=0)\n"
             "det.fit(np.zeros((2, 64, 64, 3), np.uint8))\n"
             "before = status('VmRSS:')\n"
             "open('/proc/self/clear_refs', 'w').write('5')\n"
             "det.score_samples([path])"),
        ]:
            program = (
                "import threading\nfrom skmsc.data.files import decode_image\n"
                "def status(key):\n"
                "    with open('/proc/self/status') as f:\n"
                "        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))\n"
                f"path = {str(path)!r}\n"
                "before = status('VmRSS:')\n"
                "open('/proc/self/clear_refs', 'w').write('5')\n"
                f"{code}\n"
                "print(status('VmHWM:') - before)\n"
            )
            done = subprocess.run([sys.executable, "-c", program], capture_output=True,
                                  text=True)
            if done.returncode:
                print(f"  {label}: failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            peak = int(done.stdout)
            print(f"  {label}: +{peak / 2**20:.0f} MiB ({peak / decoded:.1f}x the pixels)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["table", "decode", "soak", "huge", "_class"])
    parser.add_argument("index", nargs="?", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--leak", action="store_true",
                        help="soak: keep every detector alive (shows what a leak looks like)")
    parser.add_argument("--unbounded", action="store_true",
                        help="huge: disable the scoring memory budget, for comparison")
    parser.add_argument("--show", type=int, default=3,
                        help="table: unhandled cases listed per class")
    parser.add_argument("--size", type=int, default=8000, help="decode: side of the PNG")
    args = parser.parse_args()
    if args.what == "table":
        table(args.show)
    elif args.what == "_class":
        run_class(args.index)
    elif args.what == "decode":
        decode(args.size)
    else:
        soak(args.leak) if args.what == "soak" else huge(args.unbounded)


if __name__ == "__main__":
    main()
