"""Images per second scoring from PNG files versus from the same pixels as an array.

Writes N Fashion-MNIST test images (digits if Fashion-MNIST is not installed) as PNG
(or JPEG, optionally enlarged) files to a temporary folder, fits an EfficientNet-Lite0
detector (epochs=0: scoring speed does not depend on training) and times
``score_samples`` on the uint8 array and on the file list with several numbers of
decoding threads. Prints what it measured, and
the largest score difference between the file and array inputs.

    python -m benchmarks.file_scoring --n 1000
"""

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

from skmsc import MeanShiftedContrastiveDetector
from skmsc.data.files import ImageFiles
from skmsc.datasets import read_images


def load(n):
    try:
        from skmsc.datasets import load_fashion_mnist

        test = load_fashion_mnist("test")
        return "Fashion-MNIST", test.images[:n]
    except FileNotFoundError:
        from sklearn.datasets import load_digits

        X = load_digits().images
        X = (np.resize(X, (n, 8, 8)) * 255 / 16).round().astype(np.uint8)
        return "digits", X


def timed(function, repeats):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images scored")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--workers", default="0,1,2,4", help="decoding threads to try")
    parser.add_argument("--side", type=int, default=None,
                        help="write the images enlarged to side x side (bicubic), so that "
                        "decoding costs more; default: their own size")
    parser.add_argument("--format", choices=["png", "jpg"], default="png")
    args = parser.parse_args()

    name, X = load(args.n)
    print(f"data: {len(X)} {name} images {X.shape[1:]} uint8; efficientnet_lite0, "
          f"image_size={args.image_size}, batch_size={args.batch_size}, "
          f"cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, image in enumerate(X):
            paths.append(os.path.join(folder, f"{i:05d}.{args.format}"))
            image = Image.fromarray(image)
            if args.side:
                image = image.resize((args.side, args.side), Image.Resampling.BICUBIC)
            image.save(paths[-1])
        if args.side or args.format == "jpg":
            X = read_images(paths)  # the array holds exactly the pixels the files decode to
        print(f"files: {args.format.upper()}, {X.shape[1]}x{X.shape[2]}, "
              f"{sum(os.path.getsize(p) for p in paths) / len(paths) / 1024:.1f} KiB each")
        det = MeanShiftedContrastiveDetector(
            "efficientnet_lite0", epochs=0, image_size=args.image_size,
            batch_size=args.batch_size, random_state=0,
        ).fit(X[:200])
        seconds, from_array = timed(lambda: det.score_samples(X), args.repeats)
        print(f"uint8 array       : {len(X) / seconds:7.1f} images/s ({seconds:.2f} s)")
        for workers in (int(w) for w in args.workers.split(",")):
            files = ImageFiles(paths, n_workers=workers)
            seconds, from_files = timed(lambda f=files: det.score_samples(f), args.repeats)
            difference = np.abs(from_files - from_array).max()
            kind = f"{args.format.upper()} files, {workers} threads"
            print(f"{kind}: {len(X) / seconds:7.1f} images/s "
                  f"({seconds:.2f} s), max |score difference| vs array {difference:.2g}")


if __name__ == "__main__":
    main()
