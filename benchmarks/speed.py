"""Speed and memory of skmsc: ceilings, pipeline efficiency, precision, memory, kNN.

Every figure printed here is measured by this run; nothing is copied from elsewhere.
Sections (``--sections``, default all):

ceiling+pipeline  (``pipeline``)
    For each backbone and image size, back to back in one process so that machine load
    affects both alike: the *ceiling* (training steps on random tensors already on the
    device in channels-last layout: two views, loss, backward, SGD step; and forward
    passes) and the *pipeline* (``fine_tune``, the loop ``fit`` runs, and the public
    ``score_samples``, both from uint8 arrays). Reports views/s, images/s and the ratios.
steps
    Milliseconds per batch of each preprocessing step of ``fit`` and ``score_samples``
    (EfficientNet-Lite0's preprocessing), next to the slower way each replaced, where
    the library can still run that way: crops with ``roi_align`` only, the blur kernel
    with its subnormal tail, scoring's resize in float.
precision
    float32 NCHW against float32 channels-last and bfloat16 (or float16 on CUDA)
    channels-last, training and forward; and the ROC-AUC of a Fashion-MNIST one-class
    fit in float32 and in the 16-bit type.
memory
    Peak RSS (above the resident size before the call) of ``score_samples`` on 1k to
    50k 32x32 uint8 images, each size in a fresh subprocess, with throughput.
knn
    Exact search against pynndescent on real EfficientNet-Lite0 features of
    Fashion-MNIST (plus noisy copies of them beyond 70k): recall@k, score differences,
    build and query times per gallery size.

Results go to ``<out>/performance.json``, ``<out>/performance_tables.md`` (the tables
below, as printed) and ``<out>/performance.png``. Timings are medians of ``--repeats``.

Example::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/speed.py --sections pipeline,precision
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its threads

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skmsc import MeanShiftedContrastiveDetector  # noqa: E402
from skmsc.neighbors import ExactIndex, NNDescentIndex  # noqa: E402
from skmsc.nn._runtime import autocast, resolve_device, resolve_precision  # noqa: E402
from skmsc.nn._training import extract_features, fine_tune  # noqa: E402
from skmsc.nn.backbones import build_backbone, freeze_stages  # noqa: E402
from skmsc.nn.model import MeanShiftedEncoder, mean_shifted_contrastive_loss  # noqa: E402

SECTIONS = ("pipeline", "steps", "precision", "memory", "knn")


# ---------------------------------------------------------------------------- helpers
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, repeats, device, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _encoder(name, device, channels_last=True, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone, spec = build_backbone(name, None)  # random weights: timing only
    freeze_stages(backbone, name, spec.default_frozen_stages)
    encoder = MeanShiftedEncoder(backbone).eval().to(device)
    if channels_last:
        encoder = encoder.to(memory_format=torch.channels_last)
    return encoder, spec


def _random_input(n, size, device, channels_last=True):
    x = torch.randn(n, 3, size, size, device=device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_step(encoder, precision, device):
    """One training step on tensors already on the device (the ceiling's unit of work)."""
    params = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-5, weight_decay=5e-5)
    center = None

    def step(views):
        nonlocal center
        with autocast(precision, device):
            z = encoder(views)
        z1, z2 = z.float().chunk(2)
        if center is None:
            center = torch.zeros(z.shape[1], device=device)
        loss = mean_shifted_contrastive_loss(z1, z2, center)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def forward_pass(encoder, precision, device):
    @torch.inference_mode()
    def forward(images):
        with autocast(precision, device):
            encoder(images)

    return forward


def interleaved(fns, repeats, device):
    """Median seconds of each function, timed in turn (A B A B ...) after one warm-up
    each, so that a change in machine load hits all of them alike."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times, strict=True):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            record.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def ceiling_train(encoder, views, precision, device, repeats):
    """Views/s of training steps on tensors already on the device."""
    step = train_step(encoder, precision, device)
    return len(views) / _median_time(lambda: step(views), repeats, device)


def ceiling_forward(encoder, images, precision, device, repeats):
    """Images/s of forward passes on tensors already on the device."""
    forward = forward_pass(encoder, precision, device)
    return len(images) / _median_time(lambda: forward(images), repeats, device)


def _load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def _table(title, columns, rows):
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value):
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.4g}"
    return str(value)


# ---------------------------------------------------------------------------- sections
def section_pipeline(args, device, out):
    train_precision = resolve_precision(args.precision, device, training=True)
    precision = resolve_precision(args.precision, device, training=False)
    rows = []
    for name in args.backbones:
        for size in args.sizes:
            batch = args.batch_size
            load_before = _load_average()
            encoder, spec = _encoder(name, device)
            views = _random_input(2 * batch, size, device)
            step = train_step(encoder, train_precision, device)
            rng = np.random.default_rng(0)
            X = rng.integers(0, 256, size=(batch * args.steps, size, size, 3), dtype=np.uint8)
            center = torch.zeros(spec.feature_dim)

            def ceiling_steps(step=step, views=views):
                for _ in range(args.steps):
                    step(views)

            def fit_loop(encoder=encoder, X=X, center=center, spec=spec, size=size,
                         batch=batch):
                fine_tune(
                    encoder, X, center, spec=spec, image_size=size, epochs=1,
                    batch_size=batch, learning_rate=1e-5, weight_decay=5e-5,
                    temperature=0.25, angular=False, device=device,
                    order_rng=np.random.default_rng(0),
                    augment_generator=torch.Generator().manual_seed(0),
                    precision=train_precision,
                )

            # Ceiling and pipeline do the same number of steps of the same size.
            t_ceiling, t_fit = interleaved([ceiling_steps, fit_loop], args.repeats, device)
            train_ceiling, train_pipeline = 2 * len(X) / t_ceiling, 2 * len(X) / t_fit
            del encoder, views, step

            det = MeanShiftedContrastiveDetector(
                name, weights=None, epochs=0, batch_size=batch, image_size=size,
                device=str(device), precision=args.precision, random_state=0,
            ).fit(X[: 2 * batch])
            images = _random_input(batch, size, device)
            forward = forward_pass(det.encoder_, precision, device)

            def ceiling_forwards(forward=forward, images=images):
                for _ in range(args.steps):
                    forward(images)

            t_forward, t_score = interleaved(
                [ceiling_forwards, lambda det=det, X=X: det.score_samples(X)], args.repeats,
                device,
            )
            forward_ceiling, score_pipeline = len(X) / t_forward, len(X) / t_score
            row = dict(
                backbone=name, size=size, batch=batch, precision=precision,
                train_precision=train_precision,
                train_ceiling=train_ceiling, train_pipeline=train_pipeline,
                train_ratio=train_pipeline / train_ceiling,
                forward_ceiling=forward_ceiling, score_pipeline=score_pipeline,
                score_ratio=score_pipeline / forward_ceiling,
                load_before=load_before, load_after=_load_average(),
            )
            rows.append(row)
            print(f"  {name} {size}px: train {train_pipeline:.1f}/{train_ceiling:.1f} views/s "
                  f"({row['train_ratio']:.2f}), score {score_pipeline:.1f}/"
                  f"{forward_ceiling:.1f} img/s ({row['score_ratio']:.2f})", flush=True)
    out["pipeline"] = rows
    return _table(
        f"Ceiling and pipeline ({device.type}, precision {args.precision!r}: training "
        f"{train_precision}, forward {precision}; batch {args.batch_size}, "
        f"median of {args.repeats})",
        ["backbone", "image px", "train ceiling views/s", "fit loop views/s", "fit / ceiling",
         "forward ceiling img/s", "score_samples img/s", "score / ceiling"],
        [[r["backbone"], r["size"], r["train_ceiling"], r["train_pipeline"], r["train_ratio"],
          r["forward_ceiling"], r["score_pipeline"], r["score_ratio"]] for r in rows],
    )


def section_steps(args, device, out):
    rows = []
    for size in args.sizes:
        for name, fast, slow in _preprocessing_steps(args.batch_size, size, device):
            t_fast = _median_time(fast, args.repeats, device) * 1e3
            t_slow = _median_time(slow, args.repeats, device) * 1e3 if slow else None
            rows.append(dict(step=name, size=size, batch=args.batch_size, ms=t_fast,
                             replaced_ms=t_slow, speedup=t_slow / t_fast if slow else None))
            print(f"  {size}px {name}: {t_fast:.2f} ms"
                  + (f" (replaced: {t_slow:.2f} ms)" if slow else ""), flush=True)
    out["steps"] = rows
    return _table(
        f"Preprocessing steps ({device.type}, EfficientNet-Lite0 preprocessing, batch "
        f"{args.batch_size}, median of {args.repeats}; uint8 input images of the output size)",
        ["step", "image px", "ms per batch", "the way it replaced, ms", "speed-up"],
        [[r["step"], r["size"], r["ms"], "" if r["replaced_ms"] is None else r["replaced_ms"],
          "" if r["speedup"] is None else r["speedup"]] for r in rows],
    )


def _preprocessing_steps(n, size, device):
    """(name, function, the slower way it replaced or None) for each step, on n images."""
    import skmsc.nn._preprocess as images_module
    from skmsc.nn import augment
    from skmsc.nn._preprocess import eval_inputs, network_input, to_unit_tensor
    from skmsc.nn.backbones import BACKBONES

    spec = BACKBONES["efficientnet_lite0"]
    X = np.random.default_rng(0).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    images = to_unit_tensor(X, device)
    generator = torch.Generator().manual_seed(0)
    boxes = augment._crop_boxes(n, size, size, (0.2, 1.0), (3 / 4, 4 / 3), generator)
    factors = augment._jitter_factors(n, (0.4, 0.4, 0.4, 0.1), generator).float().to(device)
    sigma = (0.1 + 1.9 * torch.rand(n, generator=generator)).to(device)
    kernel_size = max(3, 2 * int(0.1 * size / 2) + 1)

    def two_views():
        return torch.cat([augment.random_views(images, size, generator) for _ in range(2)])

    views = two_views()

    def adjust(operation, i):
        return lambda: operation(images, factors[:, i].view(-1, 1, 1, 1))

    def eval_in_float():
        saved = images_module.UINT8_RESIZE_DEVICES
        images_module.UINT8_RESIZE_DEVICES = ()
        try:
            return eval_inputs(X, spec, size, device)
        finally:
            images_module.UINT8_RESIZE_DEVICES = saved

    return [
        ("uint8 batch to float NCHW (fit)", lambda: to_unit_tensor(X, device), None),
        ("crops (grid_sample where one sample per pixel)",
         lambda: augment._resample_boxes(images, boxes, size),
         lambda: augment._roi_align_boxes(images, boxes, size)),
        ("brightness", adjust(augment._adjust_brightness, 0), None),
        ("contrast", adjust(augment._adjust_contrast, 1), None),
        ("saturation", adjust(augment._adjust_saturation, 2), None),
        ("hue", adjust(augment._adjust_hue, 3), None),
        ("Gaussian blur (subnormal weights zeroed)",
         lambda: augment._gaussian_blur(images, sigma, kernel_size),
         lambda: _blur_keeping_subnormals(images, sigma, kernel_size)),
        ("two MoCo-v2 views", two_views, None),
        ("normalise the 2 x batch views to channels-last",
         lambda: network_input(views, spec), None),
        ("score input: resize, crop, normalise (uint8 kernels)",
         lambda: eval_inputs(X, spec, size, device), eval_in_float),
    ]


def _blur_keeping_subnormals(images, sigma, kernel_size):
    """``augment._gaussian_blur`` as it was before its kernel's subnormal tail was zeroed."""
    from skmsc.nn import augment

    kernel = augment._gaussian_kernels(sigma, kernel_size, images)
    return augment._separable_convolution(images, kernel)


def section_precision(args, device, out):
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
            encoder, _ = _encoder(name, device, channels_last=channels_last)
            views = _random_input(2 * batch, size, device, channels_last)
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
    text = _table(
        f"Precision and layout ({device.type}, {args.precision_size}px, batch "
        f"{args.batch_size}, median of {args.repeats})",
        ["backbone", "precision", "layout", "train views/s", "speed-up", "forward img/s",
         "speed-up"],
        [[r["backbone"], r["precision"], r["layout"], r["train"], r["train_speedup"],
          r["forward"], r["forward_speedup"]] for r in rows],
    )
    auc_rows = _precision_auc(args, device)
    out["precision"] = {"speed": rows, "auc": auc_rows}
    text += "\n" + _table(
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
    from sklearn.metrics import roc_auc_score

    from skmsc.datasets import load_fashion_mnist

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


_MEMORY_CHILD = r"""
import json, os, sys, time, threading
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from skmsc import MeanShiftedContrastiveDetector
n, batch, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
rng = np.random.default_rng(0)
det = MeanShiftedContrastiveDetector("efficientnet_lite0", epochs=0, image_size=32,
    batch_size=batch, precision=precision, random_state=0)
det.fit(rng.integers(0, 256, size=(1000, 32, 32, 3), dtype=np.uint8))
X = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
det.score_samples(X[:batch])  # warm up allocator and kernels
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident size (VmHWM) to the current size
before = status("VmRSS:")
start = time.perf_counter()
scores = det.score_samples(X)
seconds = time.perf_counter() - start
print(json.dumps(dict(n=n, rss_before=before, peak=status("VmHWM:"), seconds=seconds,
    train_features_bytes=det.train_features_.nbytes, finite=bool(np.isfinite(scores).all()))))
"""


def section_memory(args, device, out):
    rows = []
    threads = str(torch.get_num_threads())
    for n in args.memory_sizes:
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE")
        result = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(n), str(args.batch_size), args.precision,
             threads], capture_output=True, text=True, env=env, check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        row["growth_mb"] = (row["peak"] - row["rss_before"]) / 2**20
        row["images_per_s"] = n / row["seconds"]
        rows.append(row)
        print(f"  {n} images: peak +{row['growth_mb']:.0f} MB over {row['rss_before'] / 2**20:.0f}"
              f" MB, {row['images_per_s']:.0f} img/s", flush=True)
    out["memory"] = rows
    by_n = {r["n"]: r for r in rows}
    text = _table(
        "score_samples memory and throughput (EfficientNet-Lite0, 32x32 uint8, fresh process "
        "each; peak = VmHWM after resetting it just before the call)",
        ["images", "RSS before (MB)", "peak growth (MB)", "img/s", "all finite"],
        [[r["n"], r["rss_before"] / 2**20, r["growth_mb"], r["images_per_s"], r["finite"]]
         for r in rows],
    )
    if 5000 in by_n and 50000 in by_n:
        diff = (by_n[50000]["peak"] - by_n[50000]["rss_before"]) - (
            by_n[5000]["peak"] - by_n[5000]["rss_before"])
        out["memory_50k_minus_5k_mb"] = diff / 2**20
        text += (f"\nPeak growth scoring 50,000 minus scoring 5,000: {diff / 2**20:.0f} MB. "
                 f"Stored training features (1,000 x 1280 float32): "
                 f"{rows[0]['train_features_bytes'] / 2**20:.1f} MB; they cost 5 KiB per "
                 "training image.\n")
    return text


def _real_features(args, device):
    """Pretrained EfficientNet-Lite0 features (float32) of all 70k Fashion-MNIST images."""
    from skmsc.datasets import load_fashion_mnist

    cache = Path(args.cache_dir) / "fashion_mnist_lite0_32px_float32.npy"
    if cache.exists():
        return np.load(cache)
    X = np.concatenate([load_fashion_mnist("train").images, load_fashion_mnist("test").images])
    det = MeanShiftedContrastiveDetector("efficientnet_lite0", epochs=0, image_size=32,
                                         precision="float32", random_state=0).fit(X[:3])
    features = extract_features(det.encoder_, X, det.backbone_spec_, 32, 256, device,
                                verbose=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, features)
    return features


def _gallery(real, n, rng, noise):
    """``n`` unit vectors: the real ones, then noisy re-normalised copies of them.

    Built in float32 blocks into one preallocated array, so 1M x 1280 costs its 4.9 GB
    and little more (a float64 noise matrix alone would be 9.5 GB).
    """
    if n <= len(real):
        return real[rng.choice(len(real), n, replace=False)]
    gallery = np.empty((n, real.shape[1]), dtype=np.float32)
    gallery[: len(real)] = real
    for start in range(len(real), n, 65536):
        block = gallery[start : min(start + 65536, n)]
        block[:] = real[rng.integers(0, len(real), len(block))]
        block += noise * rng.standard_normal(block.shape, dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return gallery


def section_knn(args, device, out):
    features = _real_features(args, device)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(features))
    queries, real = features[order[: args.knn_queries]], features[order[args.knn_queries :]]
    # Noise per dimension such that a copy sits half the median nearest-neighbour
    # distance of real features away from its original: near, but not a duplicate.
    probe = ExactIndex(real[:5000]).kneighbors(real[:5000], 1, exclude_self=True)[0][:, 0]
    noise = 0.5 * float(np.sqrt(np.median(probe))) / np.sqrt(real.shape[1])
    k = args.knn_k
    # numba compiles pynndescent on first use (tens of seconds): do it before timing.
    NNDescentIndex(real[:2000], random_state=0).kneighbors(queries[:10], k)
    rows, pick = [], None
    for n in args.knn_sizes:
        gallery = _gallery(real, n, rng, noise)
        exact = ExactIndex(gallery)
        exact_s = _median_time(lambda e=exact: e.kneighbors(queries, k), args.repeats, device, 0)
        e_d, e_i = exact.kneighbors(queries, k)
        degrees = args.nnd_degrees if pick is None else [pick[0]]
        size_rows = []
        for degree in degrees:
            start = time.perf_counter()
            approx = NNDescentIndex(gallery, n_neighbors=degree, random_state=0)
            build_s = time.perf_counter() - start
            approx.kneighbors(queries[:10], k)  # numba compilation of the query path
            # Every epsilon at every size: the breadth a size needs for the recall target
            # grows with the gallery.
            for epsilon in args.nnd_epsilons:
                approx.epsilon = epsilon
                query_s = _median_time(lambda a=approx: a.kneighbors(queries, k),
                                       args.repeats, device, 0)
                a_d, a_i = approx.kneighbors(queries, k)
                recall = np.mean([len(set(a) & set(e)) / k
                                  for a, e in zip(a_i, e_i, strict=True)])
                e_score, a_score = e_d.sum(1), a_d.sum(1)
                rel = (a_score - e_score) / e_score
                row = dict(
                    n=n, degree=degree, epsilon=epsilon, recall=float(recall),
                    exact_query_s=exact_s, nnd_query_s=query_s, nnd_build_s=build_s,
                    differing=float(np.mean(rel > 1e-9)), max_rel=float(rel.max()),
                    mean_rel=float(rel.mean()),
                    # What fit pays: leave-one-out queries of all n training vectors.
                    exact_fit_s=exact_s * n / len(queries),
                    nnd_fit_s=build_s + query_s * n / len(queries),
                )
                size_rows.append(row)
                print(f"  n={n} degree={degree} eps={epsilon}: recall {recall:.4f}, exact "
                      f"{exact_s:.3f}s, nnd {query_s:.3f}s (build {build_s:.0f}s), score "
                      f"max rel diff {row['max_rel']:.2e}", flush=True)
            del approx
        rows += size_rows
        # The fastest query among settings whose recall clears the target (else the
        # most exact one); the degree is fixed at the smallest size.
        best = min(size_rows, key=lambda r: (r["recall"] < args.recall_target,
                                             r["nnd_query_s"] if r["recall"] >= args.recall_target
                                             else -r["recall"]))
        best["chosen"] = True
        if pick is None:
            pick = (best["degree"], best["epsilon"])
    chosen = [r for r in rows if r.get("chosen")]
    out["knn"] = {"rows": rows, "queries": len(queries), "k": k, "noise_sigma": noise,
                  "real_features": len(features), "degree": pick[0],
                  "chosen": {r["n"]: r["epsilon"] for r in chosen},
                  "fit_crossover": _crossover(chosen, "exact_fit_s", "nnd_fit_s"),
                  "query_crossover": _crossover(chosen, "exact_query_s", "nnd_query_s")}
    text = _table(
        f"kNN: exact against pynndescent ({len(queries)} held-out real queries, k={k}, "
        f"{features.shape[1]}-d real features of {len(features)} Fashion-MNIST images; "
        f"larger galleries add noisy copies, sigma {noise:.2g} per dimension)",
        ["gallery", "degree", "epsilon", "chosen", "recall@k", "exact query s", "nnd query s",
         "nnd build s", "scores differing", "max score diff (rel)", "fit kNN exact s",
         "fit kNN nnd s"],
        [[r["n"], r["degree"], r["epsilon"], "yes" if r.get("chosen") else "", r["recall"],
          r["exact_query_s"], r["nnd_query_s"], r["nnd_build_s"], r["differing"],
          r["max_rel"], r["exact_fit_s"], r["nnd_fit_s"]] for r in rows],
    )
    listed = ", ".join(f"{n}: {e}" for n, e in out["knn"]["chosen"].items())
    return text + (
        f"\nDegree {pick[0]}; epsilon chosen per gallery size (fastest query with recall >= "
        f"{args.recall_target}, else the most exact): {listed}. Crossover (log-log "
        f"interpolation over the chosen rows) of fit's kNN cost: "
        f"{out['knn']['fit_crossover']}; of query time: {out['knn']['query_crossover']} "
        "training vectors (None: no crossing in the measured range).\n"
    )


def _crossover(rows, exact_key, approx_key):
    """Gallery size where pynndescent (one row per size) becomes cheaper than exact search."""
    points = sorted((r["n"], r[exact_key], r[approx_key]) for r in rows)
    if points and points[0][2] <= points[0][1]:
        return points[0][0]  # already cheaper at the smallest size measured
    for (n0, e0, a0), (n1, e1, a1) in zip(points, points[1:], strict=False):
        if a1 <= e1:
            # log(a/e) is linear in log(n) between the two sizes; find its zero.
            g0, g1 = np.log(a0 / e0), np.log(a1 / e1)
            return int(round(np.exp(np.log(n0) + (np.log(n1) - np.log(n0)) * g0 / (g0 - g1))))
    return None


def plot(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    memory = out.get("memory")
    if not memory:
        return
    n = [r["n"] for r in memory]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(n, [r["images_per_s"] for r in memory], "o-")
    left.set(xscale="log", xlabel="images scored", ylabel="images / s",
             title="score_samples throughput")
    right.plot(n, [(r["peak"] - r["rss_before"]) / 2**20 for r in memory], "o-",
               label="peak growth during the call")
    right.plot(n, [n_i * 32 * 32 * 3 / 2**20 for n_i in n], "--",
               label="size of the uint8 input (resident before the call, not in the growth)")
    right.set(xscale="log", xlabel="images scored", ylabel="MB",
              title="score_samples memory (32x32, Lite0)")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    strs = lambda s: s.split(",")  # noqa: E731
    p.add_argument("--sections", type=strs, default=list(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="precision of pipeline and memory runs")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--backbones", type=strs, default=["efficientnet_lite0", "resnet18", "resnet50"])
    p.add_argument("--sizes", type=ints, default=[32, 224])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="batches per pipeline measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision-backbones", type=strs, default=["efficientnet_lite0", "resnet18"])
    p.add_argument("--precision-size", type=int, default=224)
    p.add_argument("--auc-precisions", type=strs, default=["float32", "auto"],
                   help="the first is the reference of the change column")
    p.add_argument("--auc-class", type=int, default=0)
    p.add_argument("--auc-train", type=int, default=1000)
    p.add_argument("--auc-test", type=int, default=2000)
    p.add_argument("--auc-epochs", type=int, default=2)
    p.add_argument("--auc-size", type=int, default=32)
    p.add_argument("--memory-sizes", type=ints, default=[1000, 5000, 20000, 50000])
    p.add_argument("--knn-sizes", type=ints, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--knn-queries", type=int, default=1000)
    p.add_argument("--knn-k", type=int, default=2)
    p.add_argument("--nnd-degrees", type=ints, default=[30, 60],
                   help="pynndescent graph degrees tried at the smallest gallery")
    p.add_argument("--nnd-epsilons", type=lambda s: [float(v) for v in s.split(",")],
                   default=[0.1, 0.2, 0.3, 0.5], help="query epsilons tried there")
    p.add_argument("--recall-target", type=float, default=0.995,
                   help="the setting used at larger galleries is the fastest that reaches it "
                   "at the smallest")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "skmsc-bench"))
    p.add_argument("--out", default=str(ROOT / "docs"))
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--plot-only", metavar="JSON",
                   help="redraw the PNG from a results file of an earlier run and exit")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.plot_only:
        source = Path(args.plot_only)
        plot(json.loads(source.read_text()), source.with_suffix(".png"))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out = {
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "load_average_start": _load_average(),
        },
        "args": {k: v for k, v in vars(args).items()},
    }
    text = (f"Device {device}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
            f", load average at start {out['machine']['load_average_start']}\n\n")
    for name in args.sections:
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; choose from {SECTIONS}")
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        text += globals()[f"section_{name}"](args, device, out) + "\n"
        out[f"{name}_seconds"] = time.perf_counter() - start
    out["machine"]["load_average_end"] = _load_average()
    text += f"Load average at end {out['machine']['load_average_end']}\n"
    print(text)
    target = Path(args.out)
    target.mkdir(parents=True, exist_ok=True)
    (target / f"performance{args.tag}.json").write_text(json.dumps(out, indent=1, default=str))
    (target / f"performance_tables{args.tag}.md").write_text(text)
    plot(out, target / f"performance{args.tag}.png")


if __name__ == "__main__":
    main()
