"""Feature extraction and mean-shifted contrastive fine-tuning over numpy image arrays."""

from __future__ import annotations

import numpy as np
import torch

from ._images import eval_transform, normalize, to_unit_tensor
from ._precision import autocast, grad_scaler
from .augment import random_views
from .backbones import BackboneSpec
from .torch_model import MeanShiftedEncoder, mean_shifted_contrastive_loss


def _progress(total: int, verbose, desc: str):
    """A tqdm bar made per call (never stored on the estimator, which must pickle)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not verbose, leave=False)


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout, which convolutions run fastest in (a no-op when already so)."""
    return images.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def extract_features(
    encoder: MeanShiftedEncoder,
    X: np.ndarray,
    spec: BackboneSpec,
    image_size: int,
    batch_size: int,
    device: torch.device,
    verbose=False,
    precision: str = "float32",
) -> np.ndarray:
    """Unit-norm features ``(n, d)`` float32 of images ``X``, one batch in memory at a time.

    ``precision`` is a resolved name (see ``_precision.resolve_precision``); the network
    runs in it, the features come back float32.
    """
    encoder.eval()
    features = np.empty((len(X), spec.feature_dim), dtype=np.float32)
    with _progress(len(X), verbose, "features") as bar:
        for start in range(0, len(X), batch_size):
            batch = to_unit_tensor(X[start : start + batch_size], device)
            with autocast(precision, device):
                out = encoder(channels_last(eval_transform(batch, spec, image_size)))
            features[start : start + len(out)] = out.float().cpu().numpy()
            bar.update(len(out))
    return features


def fine_tune(
    encoder: MeanShiftedEncoder,
    X: np.ndarray,
    center: torch.Tensor,
    *,
    spec: BackboneSpec,
    image_size: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    temperature: float,
    angular: bool,
    device: torch.device,
    order_rng: np.random.Generator,
    augment_generator: torch.Generator,
    verbose=False,
    precision: str = "float32",
) -> list[float]:
    """Fine-tune ``encoder`` in place with the mean-shifted contrastive loss.

    BatchNorm statistics stay frozen (the encoder never enters train mode) and frozen
    stages have ``requires_grad=False``. Returns the mean loss of each epoch. The network
    runs in ``precision`` (a resolved name); augmentation and the loss stay float32.
    """
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    if epochs == 0:
        return []
    if not trainable:
        raise ValueError(
            "Every stage of the backbone is frozen, so fine-tuning cannot change it: "
            "lower frozen_stages or set epochs=0."
        )
    # The paper's optimiser: plain SGD, no momentum.
    optimizer = torch.optim.SGD(trainable, lr=learning_rate, weight_decay=weight_decay)
    scaler = grad_scaler(precision, device)
    center = center.to(device)
    loss_curve = []
    n_batches = -(-len(X) // batch_size)
    with _progress(epochs * n_batches, verbose, "fine-tuning") as bar:
        for epoch in range(epochs):
            order = order_rng.permutation(len(X))
            total, count = 0.0, 0
            for start in range(0, len(X), batch_size):
                # Sorted indices keep the gather from a memmap sequential; the shuffle
                # already decided which images share the batch.
                rows = np.sort(order[start : start + batch_size])
                images = to_unit_tensor(X[rows], device)
                views = torch.cat(
                    [random_views(images, image_size, augment_generator) for _ in range(2)]
                )
                # One forward pass for both views: BatchNorm is in eval mode, so samples
                # do not interact and this equals two separate passes.
                with autocast(precision, device):
                    z = encoder(channels_last(normalize(views, spec)))
                z1, z2 = z.float().chunk(2)
                loss = mean_shifted_contrastive_loss(z1, z2, center, temperature, angular)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.item() * len(rows)
                count += len(rows)
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{total / count:.4f}")
            loss_curve.append(total / count)
    return loss_curve
