"""The scikit-learn estimator: MeanShiftedContrastiveDetector."""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._chunks import scoring_chunk_rows
from ._device import resolve_device
from ._estimator_info import DocLinkMixin, current_versions, warn_on_version_mismatch
from ._images import check_image_array
from ._knn import AUTO_CONTAMINATION, check_enough_samples, fit_knn, knn_scores
from ._precision import PRECISIONS, resolve_precision
from ._training import extract_features, fine_tune_and_extract
from ._validation import check_input_container
from .backbones import BACKBONES, build_backbone, freeze_stages
from .image_files import ImageFiles, as_image_files
from .neighbors import make_index
from .torch_model import MeanShiftedEncoder

__all__ = ["AUTO_CONTAMINATION", "MeanShiftedContrastiveDetector"]


class MeanShiftedContrastiveDetector(DocLinkMixin, OutlierMixin, BaseEstimator):
    """Image anomaly detector trained on normal images only (Reiss & Hoshen, AAAI 2023).

    ``fit`` takes an ImageNet-pretrained backbone, computes the centre of the normal
    images' unit-norm features, fine-tunes the backbone with the mean-shifted
    contrastive loss, and stores the fine-tuned features of the training images. An
    image's anomaly score is the sum of squared distances from its feature to the
    ``n_neighbors`` nearest training features.

    X may also be a 2-D array of feature vectors: then no network is used and the
    detector is the kNN scorer alone (``backbone`` and the training parameters are
    ignored).

    Parameters
    ----------
    backbone : {"resnet152", "resnet101", "resnet50", "resnet34", "resnet18", \
            "efficientnet_lite0"}, default="resnet152"
        The pretrained network. ``"resnet152"`` is the paper's.
        ``"efficientnet_lite0"`` ships its ImageNet weights with the package and works
        offline; ResNet weights come from the torch cache or are downloaded.
    weights : "imagenet", str or os.PathLike or None, default="imagenet"
        ``"imagenet"`` for the paper's ImageNet weights (torchvision ``IMAGENET1K_V1``),
        a path to a state-dict file for the chosen backbone, or ``None`` for random
        weights (useful for tests only).
    frozen_stages : "auto" or int, default="auto"
        How many leading stages of the backbone keep their pretrained weights. ResNets
        have 5 stages (stem, layer1-4), EfficientNet-Lite0 has 9 (stem, 7 blocks,
        head). ``"auto"``: the paper's 3 for ResNet50/101/152, 0 for ResNet18/34, and 4
        for EfficientNet-Lite0 (stem and blocks up to stride 8, like ResNet152).
    epochs : int, default=20
        Fine-tuning epochs. ``0`` gives the pretrained-feature kNN baseline.
    batch_size : int, default=64
        Images per fine-tuning step (each gives two views) and per scoring batch.
        Scores do not depend on it beyond float rounding (agreement within 1e-5,
        tested). On CUDA out-of-memory the batch is halved and retried with a
        ``ResourceWarning`` (down to 2 images for fine-tuning, 1 for scoring), then a
        ``torch.OutOfMemoryError`` names the batch size that failed.
    learning_rate : float, default=1e-5
        SGD learning rate (no momentum, as in the paper).
    weight_decay : float, default=5e-5
    temperature : float, default=0.25
        Temperature of the contrastive loss.
    angular : bool, default=False
        Add the angular centre loss to the contrastive loss.
    n_neighbors : int, default=2
        Neighbours summed in the anomaly score.
    image_size : int, default=224
        Side of the square the network sees. Images are resized so their shorter side is
        ``image_size / crop_fraction`` (the backbone's evaluation crop) and centre-cropped.
    knn_algorithm : {"auto", "exact", "nndescent"}, default="auto"
        Neighbour search: exact chunked matrix products, or pynndescent's approximate
        index. ``"auto"`` is exact up to 20,000 training images.
    contamination : "auto" or float, default="auto"
        Expected fraction of anomalies, in (0, 0.5]: the threshold ``offset_`` flags that
        fraction of the leave-one-out training scores (each training image scored
        against the others, as a fresh normal image would be). ``"auto"`` uses 0.01, so
        about 1% of new normal images are flagged.
    device : str, default="auto"
        ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Arithmetic of the network (fine-tuning and feature extraction): float32, or
        mixed precision with convolutions in bfloat16 or float16 (``torch.autocast``;
        weights, loss, features and kNN stay float32). ``"auto"`` is bfloat16 on CUDA
        GPUs that support it; on CPUs with AVX512-BF16 or AMX it is bfloat16 for
        feature extraction and float32 for fine-tuning (PyTorch's bfloat16 backward
        pass is slower than float32 on CPUs); float32 elsewhere. See
        ``docs/performance.md`` for measured speed-ups and ROC-AUC changes.
    early_stopping : bool, default=True
        The label-free safeguard against fine-tuning that hurts. A seeded
        ``validation_fraction`` of the images is held out of fine-tuning; after every
        epoch (and for the pretrained network, epoch 0) they and synthetic anomalies made
        from them (pasted patches, scars, blends with another image) are scored against
        the other images' features, and the epoch with the best ROC-AUC of normal against
        synthetic is kept: a fine-tuned one only if it beats the pretrained network by
        0.005. Training stops after ``n_iter_no_change`` epochs without a new best. The
        held-out images join the kNN gallery all the same. Needs 30 images or more (else
        a warning, and the last epoch is kept). See ``docs/benchmarks.md`` for how often
        it keeps the right epoch.
    validation_fraction : float, default=0.1
        Fraction of the images held out for ``early_stopping``, at most 256 images;
        raised to 10 images when it gives fewer (hence the 30 images needed).
    n_iter_no_change : int, default=3
        Epochs without a better held-out score after which ``early_stopping`` stops.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, data order, augmentation and the kNN index. An
        int gives identical fits on the CPU. ``None`` draws fresh seeds from the OS.
        The global random states (torch, numpy, ``random``) are never used or changed.
    verbose : bool or int, default=False
        Show progress bars with the loss and time left.

    Attributes
    ----------
    center_ : ndarray of shape (n_features_out,)
        Centre of the pretrained training features (the mean shift).
    train_features_ : ndarray of shape (n_samples, n_features_out)
        Fine-tuned unit-norm features of the training images.
    train_scores_ : ndarray of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training images: each scored against the
        others. ``train_scores_ < offset_`` marks the ``contamination`` fraction of them
        (``predict(X_train)`` flags fewer, since there each is its own nearest neighbour).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    loss_curve_ : list of float
        Mean loss of each fine-tuning epoch (fewer than ``epochs`` if early stopping
        ended training).
    validation_scores_ : list of float or None
        With ``early_stopping``: the held-out ROC-AUC (normal against synthetic
        anomalies) of the pretrained network (index 0) and after each epoch; else
        ``None``.
    best_epoch_ : int
        The epoch whose network the detector keeps: 0 is the pretrained network.
    device_ : torch.device
        Device the network ran on.
    precision_ : dict
        Arithmetic the network used in ``fit``: ``{"fine_tuning": ..., "features": ...}``,
        each "float32", "bfloat16" or "float16" (``precision`` resolved on ``device_``).
    knn_algorithm_ : {"exact", "nndescent"}
        The neighbour search in use.
    versions_ : dict
        Versions of skmsc and its main dependencies at fit time.
    input_shape_ : tuple or None
        Shape of one sample seen in ``fit`` (arrays of another shape are refused);
        ``None`` when fitted on image files, which may differ in size (then images of any
        size are scored).
    n_features_in_ : int
        ``X.shape[1]`` in ``fit``, as scikit-learn defines it (absent when fitted on
        image files).
    encoder_ : torch.nn.Module or None
        The fine-tuned network (``None`` for feature-vector input).

    See Also
    --------
    sklearn.neighbors.LocalOutlierFactor : kNN-based outlier detection on features.

    References
    ----------
    T. Reiss and Y. Hoshen, "Mean-Shifted Contrastive Loss for Anomaly Detection",
    AAAI 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc import MeanShiftedContrastiveDetector
    >>> rng = np.random.default_rng(0)
    >>> X_train = rng.normal(size=(100, 8))
    >>> det = MeanShiftedContrastiveDetector(random_state=0).fit(X_train)
    >>> det.predict(np.vstack([X_train[:2], [[9.0] * 8]])).tolist()
    [1, 1, -1]
    """

    _parameter_constraints: dict = {
        "backbone": [StrOptions(set(BACKBONES))],
        "weights": [StrOptions({"imagenet"}), str, os.PathLike, None],
        "frozen_stages": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "angular": ["boolean"],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "image_size": [Interval(Integral, 16, None, closed="left")],
        "knn_algorithm": [StrOptions({"auto", "exact", "nndescent"})],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS))],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        backbone="resnet152",
        *,
        weights="imagenet",
        frozen_stages="auto",
        epochs=20,
        batch_size=64,
        learning_rate=1e-5,
        weight_decay=5e-5,
        temperature=0.25,
        angular=False,
        n_neighbors=2,
        image_size=224,
        knn_algorithm="auto",
        contamination="auto",
        device="auto",
        precision="auto",
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=3,
        random_state=None,
        verbose=False,
    ):
        self.backbone = backbone
        self.weights = weights
        self.frozen_stages = frozen_stages
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.angular = angular
        self.n_neighbors = n_neighbors
        self.image_size = image_size
        self.knn_algorithm = knn_algorithm
        self.contamination = contamination
        self.device = device
        self.precision = precision
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fine-tune on normal images ``X`` and index their features.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3]) or (n_samples, n_features), \
                or sequence of image paths / PIL images
            Normal images (uint8 0-255 or float in [0, 1]), or feature vectors; or a list,
            tuple or 1-D array of image file paths or PIL images (or a
            :class:`skmsc.image_files.ImageFiles`), of any sizes, decoded lazily in
            batches. An unreadable file raises an error naming it.
        y : Ignored
            Present for API consistency.

        Returns
        -------
        self : object
            The fitted detector.
        """
        before = self.__dict__.copy()
        try:
            self._fit(X)
        except BaseException:
            # Never half-fitted: an error or an interrupt leaves the previous state.
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        return self

    def _fit(self, X):
        files = as_image_files(X)
        if files is None:
            check_input_container(X)
            X = validate_data(self, X, dtype="numeric", allow_nd=True, ensure_min_samples=1)
        else:
            # Files have no common shape: there is no n_features_in_ to record, and a
            # stale one from an earlier array fit must not constrain scoring.
            self.__dict__.pop("n_features_in_", None)
            X = files
        check_enough_samples(len(X), self.n_neighbors)
        seeds = _fit_seeds(self.random_state)
        validation_scores, best_epoch = None, 0
        if files is None and X.ndim == 2:
            features = np.asarray(X, dtype=np.float32)
            encoder, spec, device = None, None, torch.device("cpu")
            precision = {"fine_tuning": "float32", "features": "float32"}
            center = features.mean(axis=0)
            loss_curve = []
        else:
            if files is None:
                check_image_array(X)
            device = resolve_device(self.device)
            encoder, spec = self._build_encoder(int(seeds[0]))
            precision = {
                "fine_tuning": resolve_precision(self.precision, device, training=True),
                "features": resolve_precision(self.precision, device, training=False),
            }
            encoder.to(device, memory_format=torch.channels_last)
            extract = dict(
                spec=spec, image_size=self.image_size, batch_size=self.batch_size,
                device=device, verbose=self.verbose, precision=precision["features"],
            )
            # The centre comes from the pretrained network in eval mode, before training.
            pretrained = extract_features(encoder, X, **extract)
            center = pretrained.mean(axis=0)
            if self.angular:
                center = center / np.linalg.norm(center)
            augment_generator = torch.Generator().manual_seed(int(seeds[1]))
            tune = dict(
                spec=spec, image_size=self.image_size, epochs=self.epochs,
                batch_size=self.batch_size, learning_rate=self.learning_rate,
                weight_decay=self.weight_decay, temperature=self.temperature,
                angular=self.angular, device=device,
                order_rng=np.random.default_rng(int(seeds[2])),
                augment_generator=augment_generator, verbose=self.verbose,
                precision=precision["fine_tuning"],
            )
            loss_curve, features, validation_scores, best_epoch = fine_tune_and_extract(
                encoder, X, torch.from_numpy(center), pretrained, extract=extract, tune=tune,
                early_stopping=self.early_stopping and self.epochs > 0,
                validation_fraction=self.validation_fraction,
                n_iter_no_change=self.n_iter_no_change, seed=int(seeds[1]),
            )
            del pretrained

        knn = fit_knn(
            features, n_neighbors=self.n_neighbors, knn_algorithm=self.knn_algorithm,
            contamination=self.contamination, seed=int(seeds[3]),
        )

        self.encoder_ = encoder
        self.backbone_spec_ = spec
        self.image_size_ = self.image_size
        self.device_ = device
        self.precision_ = precision
        self.center_ = np.asarray(center, dtype=np.float32)
        self.loss_curve_ = loss_curve
        self.validation_scores_ = validation_scores
        self.best_epoch_ = best_epoch
        self.train_features_ = features
        self.train_scores_ = knn.train_scores
        self.offset_ = knn.offset
        self.input_shape_ = None if files is not None else tuple(X.shape[1:])
        self.versions_ = current_versions()
        self.knn_algorithm_ = knn.knn_algorithm
        self._index = knn.index
        self._index_seed = int(seeds[3])

    def _build_encoder(self, seed: int) -> tuple[MeanShiftedEncoder, object]:
        # Random initialisation draws from torch's global generator: fork it so the
        # user's global random state is neither used nor changed.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone, spec = build_backbone(self.backbone, self.weights)
        frozen = spec.default_frozen_stages if self.frozen_stages == "auto" else self.frozen_stages
        freeze_stages(backbone, self.backbone, frozen)
        return MeanShiftedEncoder(backbone).eval(), spec

    # ------------------------------------------------------------------ scoring
    def _validated(self, X):
        """``X`` checked against the fit: an array, or ``ImageFiles`` for image files."""
        check_is_fitted(self)
        files = as_image_files(X)
        if files is not None:
            if self.encoder_ is None:
                raise ValueError(
                    "This detector was fitted on feature vectors, so it cannot score image "
                    "files. Fit it on images (an array or files) to score images."
                )
            return files
        check_input_container(X)
        raw = X  # a DataFrame keeps its column names for validate_data below
        X = check_array(X, dtype="numeric", allow_nd=True, estimator=self, input_name="X")
        if self.input_shape_ is None:
            # Fitted on files: the network resizes, so image arrays of any size are scored.
            check_image_array(X)
        elif len(self.input_shape_) > 1 and tuple(X.shape[1:]) != self.input_shape_:
            single = (
                " For a single image pass X[None]." if tuple(X.shape) == self.input_shape_ else ""
            )
            raise ValueError(
                f"X has samples of shape {tuple(X.shape[1:])}, but this detector was fitted "
                f"on images of shape {self.input_shape_}. Pass data shaped like the "
                f"training data (resize images to the training size), or refit.{single}"
            )
        if self.encoder_ is None and X.ndim != 2:
            raise ValueError(
                f"X has shape {X.shape}, but this detector was fitted on feature vectors of "
                f"shape {self.input_shape_}: pass a 2-D array (n_samples, "
                f"{self.input_shape_[0]}), or refit on images to score images."
            )
        validate_data(self, raw, reset=False, skip_check_array=True)
        if self.encoder_ is not None:
            check_image_array(X)
        return X

    def _extract(self, X) -> np.ndarray:
        """Features of validated samples ``X`` (see ``_validated``)."""
        if self.encoder_ is None:
            return np.asarray(X, dtype=np.float32)
        # Resolved here, not read from precision_: an unpickled detector may run on
        # another device than the one it was fitted on.
        precision = resolve_precision(self.precision, self.device_, training=False)
        return extract_features(
            self.encoder_, X, self.backbone_spec_, self.image_size_, self.batch_size,
            self.device_, verbose=self.verbose, precision=precision,
        )

    def _features(self, X) -> np.ndarray:
        return self._extract(self._validated(X))

    def score_samples(self, X):
        """Normality score: minus the summed squared distance to the nearest training features.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Images or feature vectors shaped like the training data, or image files
            (any size; see ``fit``).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher means more normal.
        """
        X = self._validated(X)  # checks fitted before the index is read
        # Chunks bounded by _chunks.SCORING_MEMORY_BUDGET_BYTES: features are scored and
        # dropped, so memory does not grow with len(X).
        rows = scoring_chunk_rows(self.train_features_.shape[1], self.batch_size)
        scores = np.empty(len(X), dtype=np.float64)
        for start in range(0, len(X), rows):
            chunk = slice(start, start + rows)
            part = X.subset(chunk) if isinstance(X, ImageFiles) else X[chunk]
            scores[chunk] = knn_scores(self._index, self._extract(part), self.n_neighbors)
        return scores

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for anomalies.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Images or feature vectors shaped like the training data, or image files
            (any size; see ``fit``).

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for normal samples, -1 for anomalies.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Images or feature vectors shaped like the training data, or image files
            (any size; see ``fit``).

        Returns
        -------
        labels : ndarray of shape (n_samples,) of int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def kneighbors(self, X, n_neighbors=None):
        """The nearest training samples of each sample of ``X``.

        Parameters
        ----------
        X : array-like or sequence of image paths / PIL images
            Images or feature vectors shaped like the training data, or image files
            (any size; see ``fit``).
        n_neighbors : int, default=None
            How many; ``None`` means the detector's ``n_neighbors``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_neighbors)
            Squared Euclidean distances in feature space, ascending.
        indices : ndarray of shape (n_samples, n_neighbors)
            Row indices into the training data.
        """
        features = self._features(X)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        return self._index.kneighbors(features, k)

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save to the folder ``path`` without pickle (see :func:`skmsc.persistence.save`).

        Parameters
        ----------
        path : str or os.PathLike
            Folder for ``detector.json`` (parameters) and ``tensors.safetensors``.

        Returns
        -------
        path : pathlib.Path
        """
        from .persistence import save

        return save(self, path)

    @classmethod
    def load(cls, path):
        """Load a detector saved with :meth:`save`; loading cannot run code from the files.

        Parameters
        ----------
        path : str or os.PathLike
            The folder given to :meth:`save`.

        Returns
        -------
        detector : MeanShiftedContrastiveDetector
        """
        from .persistence import load

        return load(path)

    def __getstate__(self):
        # object.__getstate__ returns the live __dict__: copy before editing.
        state = dict(super().__getstate__())
        encoder = state.get("encoder_")
        if encoder is not None:
            # Tensors go to the CPU so a model fitted on a GPU loads anywhere.
            state["encoder_"] = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
        # The kNN index is rebuilt from train_features_ on load (deterministic seed).
        state.pop("_index", None)
        if "device_" in state:
            state["device_"] = str(state["device_"])
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "train_features_" not in state:
            return
        warn_on_version_mismatch(state.get("versions_"), type(self).__name__)
        self.device_ = _loadable_device(torch.device(state["device_"]))
        if isinstance(self.encoder_, dict):
            with torch.random.fork_rng(devices=[]):
                backbone, _ = build_backbone(self.backbone_spec_.name, weights=None)
            encoder = MeanShiftedEncoder(backbone)
            encoder.load_state_dict(self.encoder_)
            for parameter in encoder.parameters():
                parameter.requires_grad_(False)
            self.encoder_ = encoder.to(self.device_, memory_format=torch.channels_last).eval()
        self._index = make_index(
            self.train_features_, self.knn_algorithm_, random_state=self._index_seed
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags


def _fit_seeds(random_state) -> np.ndarray:
    """Four seeds (weights, augmentation, data order, kNN index) from ``random_state``.

    ``None`` draws fresh entropy from the OS rather than numpy's global generator (which
    ``check_random_state(None)`` would advance), so fitting never touches global state.
    """
    if random_state is None:
        return np.random.default_rng().integers(0, 2**31 - 1, size=4)
    return check_random_state(random_state).randint(0, 2**31 - 1, size=4)


def _loadable_device(device: torch.device) -> torch.device:
    """The saved device if this machine has it, else the CPU."""
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        return torch.device("cpu")
    return device
