"""The two loops over a batch source: feature extraction and contrastive fine-tuning.

Both read images through a batch source (``skmsc.data._batches``: an array or files) with
the transform of ``skmsc.nn._preprocess``, so neither knows what kind of input it has.
On CUDA out-of-memory both halve their batch and go on (see the functions).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import DivergenceError, caller_stacklevel
from . import _safeguard
from ._preprocess import eval_transform, network_input, training_transform
from ._runtime import autocast, grad_scaler
from .augment import random_views
from .backbones import BackboneSpec
from .model import MeanShiftedEncoder, mean_shifted_contrastive_loss

__all__ = ["Extraction", "extract_features", "fine_tune", "fine_tune_and_extract"]

# Bytes one feature-extraction chunk may hold as float32 pixels at input resolution:
# huge images are then converted a few (or one) at a time instead of batch_size at once.
EXTRACT_FLOAT_BUDGET_BYTES = 256 * 2**20
# The reference blurs 224 px views with sigma 0.1-2 px; other view sizes scale it, so the
# blur is the same relative to the image (unscaled, a 64 px view was blurred 3.5x as much).
REFERENCE_VIEW_SIZE = 224
REFERENCE_BLUR_SIGMA = (0.1, 2.0)
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


def divergence_error(what: str, *, learning_rate=None, weight_decay=None, temperature=None,
                     precision: str = "float32") -> DivergenceError:
    """A :class:`DivergenceError`: ``what`` (e.g. "The loss is") NaN or infinite, and why.

    Settings far from the paper's (SGD lr 1e-5, weight decay 5e-5, temperature 0.25) come
    first; the others follow as further candidates.
    """
    suspects, settings = [], []
    for name, value, bad, advice in [
        ("learning_rate", learning_rate, lambda v: v > 0.1, "lower it (the paper: 1e-5)"),
        ("weight_decay", weight_decay, lambda v: v > 0.1, "lower it (the paper: 5e-5)"),
        ("temperature", temperature, lambda v: v < 0.01, "raise it (the paper: 0.25)"),
        ("precision", precision, lambda v: v != "float32", "use precision='float32'"),
    ]:
        if value is None:
            continue
        text = f"{name}={value!r}" if isinstance(value, str) else f"{name}={value:g}"
        settings.append(text)
        if bad(value):
            suspects.append(f"{text}: {advice}")
    causes = "; ".join(suspects) if suspects else (
        f"none of {', '.join(settings)} is far from the paper's; lower learning_rate, or "
        "check the weights")
    return DivergenceError(
        f"{what} NaN or infinite. Likely cause: {causes}. The estimator was left as it was "
        "before fit."
    )


#: Progress bars open in each thread: a bar opened inside another (the safeguard's
#: feature extraction at the end of a fine-tuning epoch) stays hidden, because two bars
#: at once redraw over each other and garble a log that is not a terminal.
_open_bars = threading.local()


@contextlib.contextmanager
def _progress(total: int, verbose, desc: str):
    """A tqdm bar made per call (never stored on the estimator, which must pickle); hidden
    when another bar of this thread is open, so there is only ever one line of progress."""
    depth = getattr(_open_bars, "depth", 0)
    _open_bars.depth = depth + 1
    try:
        with tqdm(total=total, desc=desc, disable=not verbose or depth > 0,
                  leave=False) as bar:
            yield bar
    finally:
        _open_bars.depth = depth


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """Images in channels-last memory, the faster layout for convolutions on CPU and GPU."""
    return images.contiguous(memory_format=torch.channels_last)


def extract_step(source, batch_size: int, image_size: int) -> int:
    """Images per network step: ``batch_size``, fewer when that many images' float32
    inputs (3 x 4 bytes a pixel) would pass ``EXTRACT_FLOAT_BUDGET_BYTES``."""
    float_bytes_per_image = 3 * 4 * source.pixels_per_image(image_size)
    return max(1, min(batch_size, EXTRACT_FLOAT_BUDGET_BYTES // max(1, float_bytes_per_image)))


@dataclass(frozen=True)
class Extraction:
    """How features are extracted (:func:`extract_features`): one frozen value.

    ``spec`` and ``image_size`` say the network's input; ``batch_size`` the images per
    step; ``precision`` is a resolved name (see ``skmsc.nn._runtime.resolve_precision``).
    """

    spec: BackboneSpec
    image_size: int
    batch_size: int
    device: torch.device
    precision: str = "float32"
    verbose: bool = False


@torch.inference_mode()
def extract_features(encoder: MeanShiftedEncoder, source, extraction: Extraction, *,
                     timer=None) -> np.ndarray:
    """Unit-norm features ``(n, d)`` float32 of a batch source, one batch in memory at a time.

    ``source`` is an ``ArrayBatches`` or ``FileBatches`` (``skmsc.data._batches``); how
    is ``extraction`` (an :class:`Extraction`). A
    batch holds at most ``batch_size`` images and at most ``EXTRACT_FLOAT_BUDGET_BYTES``
    of float32 pixels at input resolution, so huge images go through a few (or one) at
    a time. Each image's feature is computed on its own (BatchNorm is in eval mode), so
    the chunking changes nothing but rounding. On CUDA out-of-memory the batch is halved
    and retried, with a ``ResourceWarning``. ``precision`` is a resolved name (see
    ``skmsc.nn._runtime.resolve_precision``); the network runs in it, the features come
    back float32. A ``timer`` (``skmsc.nn._eta.FitTimer``) is told of every batch.
    """
    spec, image_size, device = extraction.spec, extraction.image_size, extraction.device
    precision, verbose = extraction.precision, extraction.verbose
    encoder.eval()
    n = len(source)
    features = np.empty((n, spec.feature_dim), dtype=np.float32)
    step = extract_step(source, extraction.batch_size, image_size)
    start = 0
    with (
        _progress(n, verbose, "features") as bar,
        source.reader(eval_transform(spec, image_size, device)) as reader,
    ):
        if timer is not None:
            timer.begin("extract")
        while start < n:
            try:
                stop = min(start + step, n)
                images = reader.read(slice(start, stop), ahead=slice(stop, min(stop + step, n)))
                with autocast(precision, device):
                    done = _extract_batch(encoder, images, features[start:stop])
                del images
            except torch.OutOfMemoryError as exc:
                smaller = _halved_or_raise(exc, step, 1, device, "feature extraction")
                done = 0
            if not done:
                _warn_and_free(device, "feature extraction", step, smaller)
                step = smaller
                continue
            start += done
            bar.update(done)
            if timer is not None:
                timer.step("extract", done)
    if timer is not None:
        timer.finish("extract")
    if not np.isfinite(features).all():
        cause = ("16-bit arithmetic overflowed: use precision='float32'"
                 if precision != "float32" else
                 "the network's weights hold NaN or infinity (check the weights file)")
        raise DivergenceError(f"The network's features are NaN or infinite. Likely cause: "
                              f"{cause}.")
    return features


def _extract_batch(encoder, images: torch.Tensor, out: np.ndarray) -> int:
    """Write the features of network inputs ``images`` into ``out``; returns how many."""
    out[:] = encoder(channels_last(images)).float().cpu().numpy()
    return len(out)


def fine_tune(
    encoder: MeanShiftedEncoder,
    source,
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
    rows: np.ndarray | None = None,
    on_epoch_end=None,
    timer=None,
) -> list[float]:
    """Fine-tune ``encoder`` in place on a batch source with the mean-shifted contrastive loss.

    BatchNorm statistics stay frozen (the encoder never enters train mode) and frozen
    stages have ``requires_grad=False``. Returns the mean loss of each epoch. The network
    runs in ``precision`` (a resolved name); augmentation and the loss stay float32.

    On CUDA out-of-memory in the forward or backward pass (before the step), the
    gradients are dropped, the batch size is halved with a ``ResourceWarning`` and training
    continues from the same images with the smaller batch; below ``MIN_FINE_TUNE_BATCH``
    images it raises ``torch.OutOfMemoryError`` naming the batch size that failed.

    ``rows`` (default: all) are the images of ``X`` trained on. ``on_epoch_end(epoch)``,
    if given, is called after each epoch (0-based) and stops training by returning True.
    A ``timer`` (``skmsc.nn._eta.FitTimer``) is told of every step.
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
    step = functools.partial(_step, precision=precision, device=device, scaler=scaler)
    center = center.to(device)
    loss_curve = []
    rows_trained = np.arange(len(source)) if rows is None else np.asarray(rows)
    n_train = len(rows_trained)
    n_batches = -(-n_train // batch_size)
    with (
        _progress(epochs * n_batches, verbose, "fine-tuning") as bar,
        source.reader(training_transform(spec, image_size, device)) as reader,
    ):
        for epoch in range(epochs):
            if timer is not None:
                timer.begin("tune")
            order = rows_trained[order_rng.permutation(n_train)]
            total, count = 0.0, 0
            start = 0
            while start < n_train:
                # Sorted indices keep the gather from a memmap sequential; the shuffle
                # already decided which images share the batch.
                rows = np.sort(order[start : start + batch_size])
                # The next batch, decoded meanwhile when the source is image files.
                ahead = np.sort(order[start + len(rows) : start + len(rows) + batch_size])
                load = functools.partial(reader.read, rows, ahead)
                try:
                    loss = step(encoder, optimizer, load, center, spec, image_size,
                                temperature, angular, augment_generator)
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
                if not math.isfinite(loss):
                    raise divergence_error(
                        f"Fine-tuning diverged: the loss at epoch {epoch + 1}, step "
                        f"{count // batch_size + 1} is",
                        learning_rate=learning_rate, weight_decay=weight_decay,
                        temperature=temperature, precision=precision)
                start += len(rows)
                total += loss * len(rows)
                count += len(rows)
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{total / count:.4f}")
                if timer is not None:
                    timer.step("tune", 1)
            if timer is not None:
                timer.finish("tune")
            loss_curve.append(total / count)
            if on_epoch_end is not None and on_epoch_end(epoch):
                break
    return loss_curve


def blur_sigma(image_size: int) -> tuple[float, float]:
    """The Gaussian blur's sigma range for views of side ``image_size``."""
    factor = image_size / REFERENCE_VIEW_SIZE
    return REFERENCE_BLUR_SIGMA[0] * factor, REFERENCE_BLUR_SIGMA[1] * factor


def _step(encoder, optimizer, load_images, center, spec, image_size, temperature, angular,
          augment_generator, *, precision, device, scaler) -> float:
    """One SGD step on the images ``load_images()`` returns; returns the loss.

    The images are loaded here so that their tensors die with this frame.
    """
    images = load_images()
    views = torch.cat([random_views(images, image_size, augment_generator,
                                    blur_sigma=blur_sigma(image_size)) for _ in range(2)])
    # One forward pass for both views: BatchNorm is in eval mode, so samples do not
    # interact and this equals two separate passes.
    with autocast(precision, device):
        z = encoder(network_input(views, spec))
    z1, z2 = z.float().chunk(2)
    loss = mean_shifted_contrastive_loss(z1, z2, center, temperature, angular)
    optimizer.zero_grad(set_to_none=True)
    # float16 needs loss scaling; for other precisions the scaler is a pass-through.
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def network_inputs(source, rows, spec: BackboneSpec, image_size: int, device: torch.device,
                   batch_size: int) -> torch.Tensor:
    """Evaluation network inputs of ``source[rows]`` as float16 ``(n, 3, S, S)`` on the CPU."""
    rows = np.asarray(rows)
    parts = []
    with source.reader(eval_transform(spec, image_size, device)) as reader:
        for start in range(0, len(rows), batch_size):
            images = reader.read(rows[start : start + batch_size])
            parts.append(images.to("cpu", torch.float16).contiguous())
    return torch.cat(parts)


@torch.inference_mode()
def features_of_inputs(encoder, inputs: torch.Tensor, spec: BackboneSpec, batch_size: int,
                       device: torch.device, precision: str) -> np.ndarray:
    """Unit-norm float32 features of stored network inputs (see :func:`network_inputs`)."""
    encoder.eval()
    out = np.empty((len(inputs), spec.feature_dim), dtype=np.float32)
    for start in range(0, len(inputs), batch_size):
        images = inputs[start : start + batch_size].to(device, torch.float32)
        with autocast(precision, device):
            _extract_batch(encoder, images, out[start : start + len(images)])
    return out


def fine_tune_and_extract(encoder, X, center, pretrained, *, extraction: Extraction,
                          tune: dict, early_stopping: bool, validation_fraction: float,
                          n_iter_no_change: int, seed: int, on_epoch=None, timer=None):
    """Fine-tune ``encoder`` on ``X`` and return the features of the network kept.

    With ``early_stopping``, a held-out part of ``X`` chooses the epoch to keep (see
    :mod:`skmsc.nn._safeguard`), the pretrained network included; else the last epoch is
    kept. ``X`` is a batch source; ``pretrained`` are the epoch-0 features of all of it;
    ``extraction`` says how features are extracted and ``tune`` holds the keyword
    arguments of :func:`fine_tune`; ``timer`` is told of every extraction batch.
    ``on_epoch(epoch, features, proxy_scores)`` (epoch 0 = pretrained) sees each
    evaluated epoch's features and held-out scores (for learning curves). Returns
    ``(loss_curve, features, validation_scores, kept_epoch)``; ``validation_scores`` is
    ``None`` without the safeguard. The encoder comes back frozen (no parameter requires
    grad), holding the kept weights.
    """
    if tune["epochs"] == 0:  # the pretrained-feature baseline: nothing to train or choose
        _freeze(encoder)
        return [], pretrained, None, 0
    split = None
    if early_stopping:
        split = _safeguard.validation_rows(len(X), validation_fraction, seed)
        if split is None:
            warnings.warn(
                f"early_stopping holds out at least {_safeguard.MIN_VALIDATION_IMAGES} "
                f"images and at most a third of them, so it needs 30 images; fit got "
                f"{len(X)}: fine-tuning ran without the safeguard and the last epoch is "
                "kept. Pass more images, or early_stopping=False to silence this.",
                UserWarning, stacklevel=caller_stacklevel(),  # the caller of fit
            )
    if split is None:
        loss_curve = fine_tune(encoder, X, center, **tune)
        _freeze(encoder)
        return (loss_curve, extract_features(encoder, X, extraction, timer=timer), None,
                len(loss_curve))
    train_rows, held_out = split
    device, batch_size = extraction.device, extraction.batch_size
    held_out_inputs = network_inputs(X, held_out, extraction.spec, extraction.image_size,
                                     device, batch_size)
    proxy = []  # (held-out normal scores, synthetic anomaly scores) of each epoch

    def evaluate(features):
        # One anomaly of every local (defect-like) and global (class-like) kind per held-out
        # image, made again each epoch from the same seeds: see _safeguard.proxy_anomalies.
        images = held_out_inputs.float()  # once per epoch, not once per kind
        synthetic = np.concatenate([
            features_of_inputs(encoder, _safeguard.proxy_anomalies(images, kind, seed),
                               extraction.spec, batch_size, device, extraction.precision)
            for kind in _safeguard.PROXY_KINDS])
        proxy.append(_safeguard.proxy_scores(features, synthetic, train_rows, held_out))
        return _safeguard.auc(*proxy[-1])

    trainable = [name for name, p in encoder.named_parameters() if p.requires_grad]

    def snapshot():
        state = encoder.state_dict()
        return {name: state[name].detach().clone() for name in trainable}

    scores = [evaluate(pretrained)]
    # Epoch 0 and the best fine-tuned epoch so far: (trainable weights, features).
    kept = {0: (snapshot(), pretrained)}
    best_fine_tuned = None
    if on_epoch is not None:
        on_epoch(0, pretrained, proxy[-1])

    def after_epoch(epoch):
        nonlocal best_fine_tuned
        features = extract_features(encoder, X, extraction, timer=timer)
        scores.append(evaluate(features))
        if on_epoch is not None:
            on_epoch(epoch + 1, features, proxy[-1])
        if best_fine_tuned is None or scores[-1] > scores[best_fine_tuned]:
            kept.pop(best_fine_tuned, None)
            best_fine_tuned = epoch + 1
            kept[best_fine_tuned] = (snapshot(), features)
        # Stop once the best epoch (pretrained included) lies n_iter_no_change behind.
        return epoch + 1 - int(np.argmax(scores)) >= n_iter_no_change

    loss_curve = fine_tune(encoder, X, center, rows=train_rows, on_epoch_end=after_epoch, **tune)
    _freeze(encoder)
    best = _safeguard.best_epoch(proxy)
    state, features = kept[best]
    encoder.load_state_dict(state, strict=False)
    return loss_curve, features, scores, best


def _freeze(encoder) -> None:
    """No parameter requires grad: the fitted network only extracts features."""
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
