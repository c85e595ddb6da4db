"""MeanShiftedNetwork: the one object through which everything uses the network.

It builds the pretrained encoder (backbone registry, frozen stages, device, seeded
weights), computes the centre of the pretrained features, fine-tunes with the
mean-shifted contrastive loss and extracts features. The estimators, the benchmarks and
anyone who wants the network without scikit-learn go through it; nothing outside
``skmsc.nn`` touches ``requires_grad``, memory formats or torch's random state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..data._batches import batch_source
from ..neighbors import KNNScorer
from ._explain import KNNScore
from ._explain import anomaly_maps as _anomaly_maps
from ._patches import reference_patches
from ._runtime import loadable_device, resolve_device, resolve_precision
from ._training import Extraction, extract_features, fine_tune, fine_tune_and_extract
from .backbones import BackboneSpec, build_backbone, empty_backbone, freeze_stages, get_spec
from .model import MeanShiftedEncoder

__all__ = ["FineTuning", "MeanShiftedNetwork"]


def _source(X):
    """``X`` as a batch source: the nn layer's one adapter, for direct callers of
    :class:`MeanShiftedNetwork` who pass an array or image collection. The estimators
    adapt their input once at fit/score entry and pass a batch source, which is used as
    it is."""
    return batch_source(X)  # a batch source comes back as it is


@dataclass(frozen=True)
class FineTuning:
    """How :meth:`MeanShiftedNetwork.fine_tune_and_extract` fine-tunes: one frozen value
    instead of a long list of keyword arguments.

    ``seed`` is an int (data order and augmentation both derive from it) or a pair
    ``(augmentation_seed, order_seed)``. ``precision`` is the fine-tuning arithmetic and
    ``features_precision`` the extraction's (``"auto"`` or a resolved name). With
    ``early_stopping``, ``validation_fraction`` of the images are held out and training
    stops after ``n_iter_no_change`` epochs without a new best (``nn/_safeguard.py``).

    Examples
    --------
    >>> from skmsc.nn import FineTuning
    >>> FineTuning(epochs=2, learning_rate=3e-4).batch_size
    64
    """

    epochs: int
    batch_size: int = 64
    learning_rate: float = 1e-5
    weight_decay: float = 5e-5
    temperature: float = 0.25
    angular: bool = False
    seed: int | tuple[int, int] = 0
    precision: str = "float32"
    features_precision: str = "float32"
    early_stopping: bool = False
    validation_fraction: float = 0.1
    n_iter_no_change: int = 3
    verbose: bool = False


class MeanShiftedNetwork:
    """A unit-norm image encoder with its preprocessing, device and training loop.

    Make one with :meth:`build` (pretrained weights) or :meth:`from_state_dict` (saved
    weights). Images are numpy arrays ``(n, H, W[, 3])`` (uint8 or float in [0, 1]), image
    collections (paths, PIL images, :class:`~skmsc.data.files.ImageFiles`) or a batch
    source (``skmsc.data._batches``).

    Parameters
    ----------
    encoder : MeanShiftedEncoder
        The network, already on ``device``.
    spec : BackboneSpec
        Its backbone's entry in the registry (feature size, preprocessing).
    image_size : int
        Side of the square the network sees.
    device : torch.device
        Where the network runs.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.nn import MeanShiftedNetwork
    >>> net = MeanShiftedNetwork.build("efficientnet_lite0", image_size=32, device="cpu")
    >>> X = np.random.default_rng(0).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    >>> center = net.center(X, batch_size=4)
    >>> losses = net.fine_tune(X, center, epochs=1, batch_size=4, seed=0)
    >>> net.extract(X, batch_size=4).shape, len(losses)
    ((8, 1280), 1)
    """

    def __init__(self, encoder: MeanShiftedEncoder, spec: BackboneSpec, image_size: int,
                 device: torch.device):
        self.encoder = encoder
        self.spec = spec
        self.image_size = image_size
        self.device = device

    # ------------------------------------------------------------------ making one
    @classmethod
    def build(
        cls,
        backbone: str,
        *,
        weights: str | os.PathLike | None = "imagenet",
        frozen_stages="auto",
        image_size: int = 224,
        device: str | torch.device = "auto",
        seed: int = 0,
    ) -> MeanShiftedNetwork:
        """A pretrained encoder with ``frozen_stages`` leading stages frozen.

        The device is resolved first, so an absent device is an error before any network
        is built. Random initialisation (``weights=None``, or layers the weights do not
        cover) draws from a forked torch generator seeded with ``seed``: the global random
        state is neither used nor changed.
        """
        device = resolve_device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, spec = build_backbone(backbone, weights)
        frozen = spec.default_frozen_stages if frozen_stages == "auto" else frozen_stages
        freeze_stages(model, backbone, frozen)
        encoder = MeanShiftedEncoder(model).eval()
        encoder.to(device, memory_format=torch.channels_last)
        return cls(encoder, spec, image_size, device)

    @classmethod
    def from_state_dict(
        cls, backbone: str, state: dict, *, image_size: int, device: str | torch.device
    ) -> MeanShiftedNetwork:
        """A frozen encoder with saved weights (strict key and shape matching).

        ``device`` falls back to the CPU when this machine lacks it (a model fitted on a
        GPU loads anywhere). Raises ``RuntimeError`` when the weights do not fit.
        """
        spec = get_spec(backbone)
        encoder = MeanShiftedEncoder(empty_backbone(spec.name))
        encoder.load_state_dict(state)  # strict: writes every uninitialised value
        network = cls(encoder, spec, image_size, loadable_device(torch.device(device)))
        network.freeze()
        encoder.to(network.device, memory_format=torch.channels_last).eval()
        return network

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights on the CPU (so a GPU model saves and loads anywhere)."""
        return {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}

    @property
    def feature_dim(self) -> int:
        """Length of a feature vector."""
        return self.spec.feature_dim

    def precision(self, precision: str, *, training: bool) -> str:
        """What ``precision`` (``"auto"`` or a name) means on this network's device."""
        return resolve_precision(precision, self.device, training=training)

    def freeze(self) -> None:
        """Stop every gradient: the network only extracts from now on."""
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)

    # ------------------------------------------------------------------ using it
    def extract(self, X, *, batch_size: int = 64, precision: str = "float32",
                verbose=False, timer=None) -> np.ndarray:
        """Unit-norm features ``(n, feature_dim)`` float32 of images ``X`` (eval mode).

        ``precision`` is ``"auto"`` or a resolved name (``"float32"``, ``"bfloat16"``,
        ``"float16"``). ``timer``: a ``skmsc.nn._eta.FitTimer`` told of every batch.
        """
        return extract_features(self.encoder, _source(X),
                                self.extraction(batch_size, precision, verbose=verbose),
                                timer=timer)

    def extraction(self, batch_size: int, precision: str = "float32", *,
                   verbose=False) -> Extraction:
        """How :meth:`extract` runs on this network (``precision``: ``"auto"`` or a name)."""
        return Extraction(spec=self.spec, image_size=self.image_size, batch_size=batch_size,
                          device=self.device, verbose=verbose,
                          precision=self.precision(precision, training=False))

    def center(self, X, *, batch_size: int = 64, precision: str = "float32", angular=False,
               verbose=False) -> np.ndarray:
        """The mean of the (pretrained) features of ``X``: the mean shift, float32.

        With ``angular`` it is normalised to unit length, as the angular loss needs.
        """
        features = self.extract(X, batch_size=batch_size, precision=precision, verbose=verbose)
        return self.mean_shift(features, angular=angular)

    @staticmethod
    def mean_shift(features: np.ndarray, *, angular: bool = False) -> np.ndarray:
        """The centre of ``features`` (float32); unit length with ``angular``."""
        center = features.mean(axis=0)
        if angular:
            center = center / np.linalg.norm(center)
        return np.asarray(center, dtype=np.float32)

    def _tune_kwargs(self, *, epochs, batch_size, learning_rate, weight_decay, temperature,
                     angular, seed, precision, verbose, timer=None) -> dict:
        augment_seed, order_seed = (seed, seed) if np.isscalar(seed) else seed
        return dict(
            spec=self.spec, image_size=self.image_size, epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate, weight_decay=weight_decay,
            temperature=temperature, angular=angular, device=self.device,
            order_rng=np.random.default_rng(int(order_seed)),
            augment_generator=torch.Generator().manual_seed(int(augment_seed)),
            verbose=verbose, precision=self.precision(precision, training=True), timer=timer,
        )

    def fine_tune(
        self,
        X,
        center: np.ndarray,
        *,
        epochs: int,
        batch_size: int = 64,
        learning_rate: float = 1e-5,
        weight_decay: float = 5e-5,
        temperature: float = 0.25,
        angular: bool = False,
        seed=0,
        precision: str = "float32",
        verbose=False,
    ) -> list[float]:
        """Fine-tune in place with the mean-shifted contrastive loss (every epoch kept).

        ``seed`` is an int (data order and augmentation both derive from it) or a pair
        ``(augmentation_seed, order_seed)``. BatchNorm statistics stay frozen, frozen
        stages keep their weights. Returns the mean loss of each epoch. Call
        :meth:`freeze` when done training.
        """
        tune = self._tune_kwargs(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            weight_decay=weight_decay, temperature=temperature, angular=angular, seed=seed,
            precision=precision, verbose=verbose,
        )
        return fine_tune(self.encoder, _source(X), torch.from_numpy(np.asarray(center)),
                         **tune)

    def fine_tune_and_extract(self, X, pretrained: np.ndarray, center: np.ndarray,
                              tuning: FineTuning, *, on_epoch=None, timer=None):
        """Fine-tune as ``tuning`` says, keep the right epoch, freeze, and return the kept
        network's features.

        ``pretrained`` are the features of ``X`` before training (the centre's). With
        ``tuning.early_stopping`` a held-out part of ``X`` and synthetic anomalies made
        from it choose the epoch to keep, the pretrained network included (seeded by the
        augmentation seed); else the last epoch is kept. With the safeguard,
        ``on_epoch(epoch, features, proxy_scores)`` sees each evaluated epoch (0 =
        pretrained) with its held-out and synthetic-anomaly scores (learning curves).
        Returns ``(loss_curve, features, validation_scores, kept_epoch)``;
        ``validation_scores`` is ``None`` without the safeguard. ``timer``: a
        ``skmsc.nn._eta.FitTimer`` told of every batch.
        """
        tune = self._tune_kwargs(
            epochs=tuning.epochs, batch_size=tuning.batch_size,
            learning_rate=tuning.learning_rate, weight_decay=tuning.weight_decay,
            temperature=tuning.temperature, angular=tuning.angular, seed=tuning.seed,
            precision=tuning.precision, verbose=tuning.verbose, timer=timer,
        )
        extraction = self.extraction(tuning.batch_size, tuning.features_precision,
                                     verbose=tuning.verbose)
        seed = tuning.seed
        augment_seed = seed if np.isscalar(seed) else seed[0]
        return fine_tune_and_extract(
            self.encoder, _source(X), torch.from_numpy(np.asarray(center)), pretrained,
            extraction=extraction, tune=tune, early_stopping=tuning.early_stopping,
            validation_fraction=tuning.validation_fraction,
            n_iter_no_change=tuning.n_iter_no_change, seed=int(augment_seed),
            on_epoch=on_epoch, timer=timer,
        )

    def anomaly_maps(self, X, *, index=None, scorer: KNNScorer | None = None,
                     n_neighbors: int | None = None, patches: np.ndarray | None = None,
                     method: str = "occlusion", batch_size: int = 64,
                     precision: str = "float32", fill: str = "mean") -> list[np.ndarray]:
        """Where each image departs from normal: one float32 ``(H, W)`` map per image of
        ``X``, at the image's own resolution (see :mod:`skmsc.nn._explain`).

        ``method="patch"`` needs ``patches``, the gallery of normal patches
        (:meth:`reference_patches` of the training images): each place's distance to the
        nearest of them. ``"layercam"``, ``"gradient"`` and ``"occlusion"`` explain the
        image's kNN anomaly score and need ``index``, the search index of the gallery (an
        index of :mod:`skmsc.neighbors`: ``kneighbors(queries, k)`` and the searched
        vectors as ``gallery``): the score explained is ``scorer``'s
        (:class:`skmsc.neighbors.KNNScorer`), negated; ``n_neighbors`` alone is short for
        ``scorer=KNNScorer(n_neighbors)``. ``precision`` is ``"auto"`` or a resolved name.
        """
        score = None
        if method != "patch":
            if index is None or (scorer is None and n_neighbors is None):
                raise TypeError(f"method={method!r} needs index= and scorer= (or "
                                "n_neighbors=).")
            score = KNNScore(index, scorer if scorer is not None else KNNScorer(n_neighbors))
        elif patches is None:
            raise TypeError("method='patch' needs patches= (see reference_patches).")
        return _anomaly_maps(
            self.encoder, _source(X), score, spec=self.spec, image_size=self.image_size,
            device=self.device, method=method, batch_size=batch_size,
            precision=self.precision(precision, training=False), fill=fill, patches=patches,
        )

    def reference_patches(self, X, *, batch_size: int = 64,
                          precision: str = "float32") -> np.ndarray:
        """The gallery of normal patches of training images ``X`` for ``method="patch"``
        maps: float32 ``(n_patches, C)`` (see :mod:`skmsc.nn._patches`)."""
        return reference_patches(
            self.encoder, _source(X), spec=self.spec, image_size=self.image_size,
            device=self.device, batch_size=batch_size,
            precision=self.precision(precision, training=False),
        )
