"""Section ``pipeline`` of speed.py: the training and forward ceilings on tensors already on
the device, against the loop ``fit`` runs and the public ``score_samples``."""

from __future__ import annotations

import numpy as np
import torch

from skmsc import MeanShiftedContrastiveDetector
from skmsc.nn import MeanShiftedNetwork, autocast, resolve_precision
from skmsc.nn.model import mean_shifted_contrastive_loss

from ._harness import interleaved, load_average, median_time, table


def network(name, device, size=224, channels_last=True, seed=0):
    """A network with random weights (timing only) and the paper's frozen stages."""
    net = MeanShiftedNetwork.build(name, weights=None, image_size=size, device=device,
                                   seed=seed)
    if not channels_last:
        net.encoder.to(memory_format=torch.contiguous_format)
    return net


def random_input(n, size, device, channels_last=True):
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


def ceiling_train(encoder, views, precision, device, repeats):
    """Views/s of training steps on tensors already on the device."""
    step = train_step(encoder, precision, device)
    return len(views) / median_time(lambda: step(views), repeats, device)


def ceiling_forward(encoder, images, precision, device, repeats):
    """Images/s of forward passes on tensors already on the device."""
    forward = forward_pass(encoder, precision, device)
    return len(images) / median_time(lambda: forward(images), repeats, device)


def section(args, device, out):
    train_precision = resolve_precision(args.precision, device, training=True)
    precision = resolve_precision(args.precision, device, training=False)
    rows = []
    for name in args.backbones:
        for size in args.sizes:
            batch = args.batch_size
            load_before = load_average()
            net = network(name, device, size)
            encoder = net.encoder
            views = random_input(2 * batch, size, device)
            step = train_step(encoder, train_precision, device)
            rng = np.random.default_rng(0)
            X = rng.integers(0, 256, size=(batch * args.steps, size, size, 3), dtype=np.uint8)
            center = np.zeros(net.feature_dim, dtype=np.float32)

            def ceiling_steps(step=step, views=views):
                for _ in range(args.steps):
                    step(views)

            def fit_loop(net=net, X=X, center=center, batch=batch):
                # The loop fit runs (MeanShiftedNetwork.fine_tune), one epoch.
                net.fine_tune(X, center, epochs=1, batch_size=batch, learning_rate=1e-5,
                              weight_decay=5e-5, temperature=0.25, seed=0,
                              precision=train_precision)

            # Ceiling and pipeline do the same number of steps of the same size.
            t_ceiling, t_fit = interleaved([ceiling_steps, fit_loop], args.repeats, device)
            train_ceiling, train_pipeline = 2 * len(X) / t_ceiling, 2 * len(X) / t_fit
            del net, encoder, views, step

            det = MeanShiftedContrastiveDetector(
                name, weights=None, epochs=0, batch_size=batch, image_size=size,
                device=str(device), precision=args.precision, random_state=0,
            ).fit(X[: 2 * batch])
            images = random_input(batch, size, device)
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
                load_before=load_before, load_after=load_average(),
            )
            rows.append(row)
            print(f"  {name} {size}px: train {train_pipeline:.1f}/{train_ceiling:.1f} views/s "
                  f"({row['train_ratio']:.2f}), score {score_pipeline:.1f}/"
                  f"{forward_ceiling:.1f} img/s ({row['score_ratio']:.2f})", flush=True)
    out["pipeline"] = rows
    return table(
        f"Ceiling and pipeline ({device.type}, precision {args.precision!r}: training "
        f"{train_precision}, forward {precision}; batch {args.batch_size}, "
        f"median of {args.repeats})",
        ["backbone", "image px", "train ceiling views/s", "fit loop views/s", "fit / ceiling",
         "forward ceiling img/s", "score_samples img/s", "score / ceiling"],
        [[r["backbone"], r["size"], r["train_ceiling"], r["train_pipeline"], r["train_ratio"],
          r["forward_ceiling"], r["score_pipeline"], r["score_ratio"]] for r in rows],
    )
