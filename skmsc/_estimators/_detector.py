"""The scikit-learn estimator: MeanShiftedContrastiveDetector (network + kNN scorer)."""

from __future__ import annotations

from sklearn.base import BaseEstimator, OutlierMixin, _fit_context

from ._base import (
    AUTO_CONTAMINATION,
    KNN_PARAMETER_CONSTRAINTS,
    KNNScorerMixin,
    SkmscEstimatorMixin,
    scoring_chunk_rows,
    store_params,
)
from ._maps import AnomalyMapMixin
from ._network_mixin import NETWORK_PARAMETER_CONSTRAINTS, NetworkEstimatorMixin, fit_seeds
from ._state import fits_aside

__all__ = ["AUTO_CONTAMINATION", "MeanShiftedContrastiveDetector"]


class MeanShiftedContrastiveDetector(
    AnomalyMapMixin, NetworkEstimatorMixin, KNNScorerMixin, SkmscEstimatorMixin, OutlierMixin,
    BaseEstimator,
):
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
        Scores do not depend on it beyond float rounding (agreement within 1e-5 in
        float32, within 1e-2 in bfloat16; tested). On CUDA out-of-memory the batch is
        halved and retried with a ``ResourceWarning`` (down to 2 images for
        fine-tuning, 1 for scoring), then a ``torch.OutOfMemoryError`` names the batch
        size that failed.
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
        Fraction of new *normal* images to flag, in (0, 0.5]: the false-alarm rate the
        threshold ``offset_`` is set for. ``offset_`` is that quantile of the
        leave-one-out training scores (each training image scored against the others, as
        a fresh normal image would be). ``"auto"`` uses 0.01, so about 1% of new normal
        images are flagged. It is not the share of anomalies expected, nor the share
        caught (that depends on the anomalies). Move it after fitting with
        :meth:`set_threshold`, which needs no refit.
    gallery_size : int, float or None, default=None
        Shrink the searched gallery to this many vectors (an int) or this fraction of
        the training samples (a float in (0, 1]); ``None`` searches every training
        feature. Scoring time falls in proportion; ROC-AUC costs are measured in
        ``docs/performance.md`` (``benchmarks/gallery.py``). The threshold still comes
        from leave-one-out scores: each training sample is scored against the gallery it
        would face without itself.
    gallery_reduction : {"kmeans", "coreset"}, default="kmeans"
        How ``gallery_size`` shrinks the gallery: k-means centres (Lloyd, 50 iterations;
        the better ROC-AUC in ``docs/performance.md``, slower to fit), or a greedy
        k-centre coreset of training features (PatchCore's; fast, keeps real training
        samples, but its threshold flags fewer new normal samples than ``contamination``
        asks, down to a sixth of it in ``docs/performance.md``; a warning says so).
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
    gallery_ : ndarray of shape (n_gallery, n_features_out)
        The vectors searched when scoring: ``train_features_`` itself, or the k-means
        centres or coreset ``gallery_size`` asked for. :meth:`kneighbors` indexes into it.
    train_scores_ : ndarray of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training images: each scored against the
        others. ``train_scores_ < offset_`` marks the ``contamination`` fraction of them
        (``predict(X_train)`` flags fewer, since there each is its own nearest neighbour).
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    contamination_ : float
        The fraction ``offset_`` is set for (``contamination`` with ``"auto"`` resolved);
        ``decision_function`` and ``predict`` refuse to run if ``contamination`` was changed
        without :meth:`set_threshold`.
    decision_scores_ : ndarray of shape (n_samples,)
        PyOD's name: outlier scores of the training samples (higher = more abnormal),
        ``-train_scores_``. Derived from the fitted state, as are the next two.
    threshold_ : float
        PyOD's name: ``-offset_``, the threshold on the ``decision_scores_`` scale.
    labels_ : ndarray of shape (n_samples,) of int
        PyOD's name: 1 for training samples whose ``decision_scores_`` exceed
        ``threshold_``, else 0.
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
        Shape of one sample seen in ``fit`` (the default input size of
        ``skmsc.onnx.export_onnx``); ``None`` when fitted on image files. Either way,
        images of any size and either channel layout are scored, resized and
        centre-cropped to ``image_size`` as in ``fit``.
    n_features_in_ : int
        ``X.shape[1]`` in ``fit``, as scikit-learn defines it (absent when fitted on
        image files).
    encoder_ : torch.nn.Module or None
        The fine-tuned network (``None`` for feature-vector input).
    reference_patches_ : ndarray of shape (n_patches, n_channels) or None
        The normal patches ``anomaly_maps(method="patch")`` compares with: every cell of
        one stage's feature map for up to 256 training images (``None`` for
        feature-vector input, or a model saved before patch maps).
    training_source_ : str
        What ``fit`` got, e.g. ``"209 image files under /data/bottle/train/good"`` or
        ``"array of shape (500, 28, 28), dtype uint8"``.
    n_samples_fit_ : int
        Number of training samples (those added by ``partial_fit`` included).
    fit_started_ : str
        When ``fit`` started, ISO 8601 in UTC.
    fit_seconds_ : float
        How long ``fit`` took.

    See Also
    --------
    sklearn.neighbors.LocalOutlierFactor : kNN-based outlier detection on features.
    skmsc.plotting.plot_anomaly_maps : Each image with its anomaly map (``anomaly_maps``).

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
        **NETWORK_PARAMETER_CONSTRAINTS,
        **KNN_PARAMETER_CONSTRAINTS,
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
        gallery_size=None,
        gallery_reduction="kmeans",
        device="auto",
        precision="auto",
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=3,
        random_state=None,
        verbose=False,
    ):
        store_params(self, locals())

    @_fit_context(prefer_skip_nested_validation=True)
    @fits_aside
    def fit(self, X, y=None):
        """Fine-tune on normal images ``X`` and index their features.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3]) or (n_samples, n_features), \
                or sequence of image paths / PIL images
            Normal images (uint8 0-255 or float in [0, 1]), or feature vectors; or a list,
            tuple or 1-D array of image file paths or PIL images (or a
            :class:`skmsc.data.files.ImageFiles`), of any sizes, decoded lazily in
            batches. An unreadable file raises an error naming it.
        y : array-like of shape (n_samples,), default=None
            Not used for training: every row of ``X`` is trained on. Present for API
            consistency; if it marks rows as anomalies (labels 0 or -1 beside 1), an
            :class:`~skmsc.AnomaliesInTrainingWarning` says so.

        Returns
        -------
        self : object
            The fitted detector.
        """
        # All or nothing: this runs on a stand-in whose state replaces the detector's
        # only when fit returns (see fits_aside).
        clock = self._fit_clock()
        source = self._fit_source(X, self.n_neighbors, y)
        seeds = fit_seeds(self.random_state)
        features = self._fit_network(source, seeds)
        self._fit_reference_patches(source)
        self._fit_knn(features, seed=int(seeds[3]))
        self._record_fit(clock, source.describe(), len(source))
        return self

    def _feature_chunks(self, X):
        """Features of ``X`` in chunks bounded by ``SCORING_MEMORY_BUDGET_BYTES``: each
        chunk is scored and dropped, so memory does not grow with ``len(X)``."""
        source = self._validated(X)  # checks fitted before anything else is read
        rows = scoring_chunk_rows(self.train_features_.shape[1], self.batch_size)
        for start in range(0, len(source), rows):
            yield self._extract(source.subset(slice(start, start + rows)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags
