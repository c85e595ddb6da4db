"""Feature extraction and mean-shifted contrastive fine-tuning over numpy image arrays."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ._images import eval_transform, normalize, to_unit_tensor
from .augment import random_views
from .backbones import BackboneSpec
from .torch_model import MeanShiftedEncoder, mean_shifted_contrastive_loss

# Bytes one feature-extraction chunk may hold as float32 pixels at input resolution:
# huge images are then converted a few (or one) at a time instead of batch_size at once.
EXTRACT_FLOAT_BUDGET_BYTES = 256 * 2**20
# The contrastive loss needs at least two images per step.
MIN_FINE_TUNE_BATCH = 2


def _halved_or_raise(exc, batch_size: int, minimum: int, device, what: str) -> int:
    """The batch size to retry with after an out-of-memory error, or a clear error.

    torch.OutOfMemoryError is what CUDA raises (torch.cuda.OutOfMemoryError is the same
    class). Called inside the ``except`` block so the error chains to the original.
    """
    if batch_size // 2 < minimum:
        raise torch.OutOfMemoryError(
            f"Out of memory on {device} during {what} even with batch_size={batch_size}. "
            f"Free memory on the device (other processes, GridSearchCV n_jobs>1), lower "
            "image_size, pass smaller images, or use device='cpu'."
        ) from exc
    return batch_size // 2


def _warn_and_free(device, what: str, failed: int, smaller: int) -> None:
    # Called after the except block: the traceback (and the tensors its frames hold)
    # is gone, so the cache can really be emptied.
    if device.type == "cuda":
        torch.cuda.empty_cache()
    warnings.warn(
        f"Out of memory on {device} during {what} with batch_size={failed}; retrying "
        f"with batch_size={smaller}. Set batch_size={smaller} to avoid the retry.",
        ResourceWarning,
        stacklevel=4,
    )


def _progress(total: int, verbose, desc: str):
    """A tqdm bar made per call (never stored on the estimator, which must pickle)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not verbose, leave=False)


@torch.inference_mode()
def extract_features(
    encoder: MeanShiftedEncoder,
    X: np.ndarray,
    spec: BackboneSpec,
    image_size: int,
    batch_size: int,
    device: torch.device,
    verbose=False,
) -> np.ndarray:
    """Unit-norm features ``(n, d)`` float32 of images ``X``, one batch in memory at a time.

    A batch holds at most ``batch_size`` images and at most
    ``EXTRACT_FLOAT_BUDGET_BYTES`` of float32 pixels at input resolution, so huge images
    go through a few (or one) at a time. Each image's feature is computed on its own
    (BatchNorm is in eval mode), so the chunking changes nothing but rounding. On CUDA
    out-of-memory the batch is halved and retried, with a ``ResourceWarning``.
    """
    encoder.eval()
    features = np.empty((len(X), spec.feature_dim), dtype=np.float32)
    float_bytes_per_image = 3 * 4 * int(np.prod(X.shape[1:3]))
    step = max(1, min(batch_size, EXTRACT_FLOAT_BUDGET_BYTES // max(1, float_bytes_per_image)))
    start = 0
    with _progress(len(X), verbose, "features") as bar:
        while start < len(X):
            try:
                done = _extract_batch(encoder, X[start : start + step], spec, image_size,
                                      device, features[start : start + step])
            except torch.OutOfMemoryError as exc:
                smaller = _halved_or_raise(exc, step, 1, device, "feature extraction")
                done = 0
            if not done:
                _warn_and_free(device, "feature extraction", step, smaller)
                step = smaller
                continue
            start += done
            bar.update(done)
    return features


def _extract_batch(encoder, batch, spec, image_size, device, out: np.ndarray) -> int:
    """Write the features of ``batch`` into ``out``; returns how many."""
    images = to_unit_tensor(batch, device)
    out[:] = encoder(eval_transform(images, spec, image_size)).float().cpu().numpy()
    return len(out)


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
) -> list[float]:
    """Fine-tune ``encoder`` in place with the mean-shifted contrastive loss.

    BatchNorm statistics stay frozen (the encoder never enters train mode) and frozen
    stages have ``requires_grad=False``. Returns the mean loss of each epoch.

    On CUDA out-of-memory in the forward or backward pass (before the step), the
    gradients are dropped, the batch size is halved with a ``ResourceWarning`` and training
    continues from the same images with the smaller batch; below ``MIN_FINE_TUNE_BATCH``
    images it raises ``torch.OutOfMemoryError`` naming the batch size that failed.
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
    with _progress(epochs * n_batches, verbose, "fine-tuning") as bar:
        for epoch in range(epochs):
            order = order_rng.permutation(len(X))
            total, count = 0.0, 0
            start = 0
            while start < len(X):
                # Sorted indices keep the gather from a memmap sequential; the shuffle
                # already decided which images share the batch.
                rows = np.sort(order[start : start + batch_size])
                try:
                    loss = _step(encoder, optimizer, X[rows], center, spec, image_size,
                                 temperature, angular, device, augment_generator)
                except torch.OutOfMemoryError as exc:
                    smaller = _halved_or_raise(
                        exc, len(rows), MIN_FINE_TUNE_BATCH, device, "fine-tuning"
                    )
                    loss = None
                if loss is None:
                    # The failed step never reached optimizer.step(): drop its gradients.
                    optimizer.zero_grad(set_to_none=True)
                    _warn_and_free(device, "fine-tuning", len(rows), smaller)
                    batch_size = smaller
                    continue
                start += len(rows)
                total += loss * len(rows)
                count += len(rows)
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{total / count:.4f}")
            loss_curve.append(total / count)
    return loss_curve


def _step(encoder, optimizer, batch, center, spec, image_size, temperature, angular, device,
          augment_generator) -> float:
    """One SGD step on a batch of images; returns the loss. Tensors die with the frame."""
    images = to_unit_tensor(batch, device)
    views = torch.cat([random_views(images, image_size, augment_generator) for _ in range(2)])
    # One forward pass for both views: BatchNorm is in eval mode, so samples do not
    # interact and this equals two separate passes.
    z = encoder(normalize(views, spec))
    z1, z2 = z.chunk(2)
    loss = mean_shifted_contrastive_loss(z1, z2, center, temperature, angular)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()
