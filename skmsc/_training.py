"""Feature extraction and mean-shifted contrastive fine-tuning over image arrays or files."""

from __future__ import annotations

import numpy as np
import torch

from ._images import eval_transform, normalize, to_unit_tensor
from .augment import random_views
from .backbones import BackboneSpec
from .image_files import ImageFiles
from .torch_model import MeanShiftedEncoder, mean_shifted_contrastive_loss


def _progress(total: int, verbose, desc: str):
    """A tqdm bar made per call (never stored on the estimator, which must pickle)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not verbose, leave=False)


@torch.inference_mode()
def extract_features(
    encoder: MeanShiftedEncoder,
    X,
    spec: BackboneSpec,
    image_size: int,
    batch_size: int,
    device: torch.device,
    verbose=False,
) -> np.ndarray:
    """Unit-norm features ``(n, d)`` float32 of images ``X``, one batch in memory at a time.

    ``X`` is an image array or an :class:`~skmsc.image_files.ImageFiles`.
    """
    encoder.eval()
    features = np.empty((len(X), spec.feature_dim), dtype=np.float32)
    starts = range(0, len(X), batch_size)
    if isinstance(X, ImageFiles):
        rows = (np.arange(start, min(start + batch_size, len(X))) for start in starts)
        inputs = X.eval_batches(rows, spec, image_size, device)
    else:
        inputs = (
            eval_transform(to_unit_tensor(X[start : start + batch_size], device), spec, image_size)
            for start in starts
        )
    with _progress(len(X), verbose, "features") as bar:
        for start, batch in zip(starts, inputs, strict=True):
            out = encoder(batch)
            features[start : start + len(out)] = out.float().cpu().numpy()
            bar.update(len(out))
    return features


def fine_tune(
    encoder: MeanShiftedEncoder,
    X,
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
) -> list[float]:
    """Fine-tune ``encoder`` in place with the mean-shifted contrastive loss.

    BatchNorm statistics stay frozen (the encoder never enters train mode) and frozen
    stages have ``requires_grad=False``. Returns the mean loss of each epoch.
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
    center = center.to(device)
    loss_curve = []
    n_batches = -(-len(X) // batch_size)
    if isinstance(X, ImageFiles):
        load = X.training_loader(spec, image_size, device)
    else:
        def load(row_batches):
            return (to_unit_tensor(X[rows], device) for rows in row_batches)
    with _progress(epochs * n_batches, verbose, "fine-tuning") as bar:
        for epoch in range(epochs):
            order = order_rng.permutation(len(X))
            total, count = 0.0, 0
            # Sorted indices keep the gather from a memmap sequential; the shuffle
            # already decided which images share the batch.
            row_batches = [
                np.sort(order[start : start + batch_size])
                for start in range(0, len(X), batch_size)
            ]
            for rows, images in zip(row_batches, load(row_batches), strict=True):
                views = torch.cat(
                    [random_views(images, image_size, augment_generator) for _ in range(2)]
                )
                # One forward pass for both views: BatchNorm is in eval mode, so samples
                # do not interact and this equals two separate passes.
                z = encoder(normalize(views, spec))
                z1, z2 = z.chunk(2)
                loss = mean_shifted_contrastive_loss(z1, z2, center, temperature, angular)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
                count += len(rows)
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{total / count:.4f}")
            loss_curve.append(total / count)
    return loss_curve
