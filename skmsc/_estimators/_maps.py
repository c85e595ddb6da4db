"""``anomaly_maps``: where in each image the detector's score comes from.

The scikit-learn half only checks its arguments and the input and hands the fitted
network and the index of its gallery to
:meth:`skmsc.nn.MeanShiftedNetwork.anomaly_maps`, which does the work
(``skmsc/nn/_explain.py``).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..nn._explain import MAP_METHODS
from ..nn._patches import patch_channels
from ._saved_fields import OMIT, FittedField, require, saved_array
from ._state import snapshot

__all__ = ["AnomalyMapMixin", "DEFAULT_MAP_METHOD"]

#: The method ``anomaly_maps`` uses unless told otherwise (chosen by the measurement in
#: docs/guide/anomaly_maps.rst: at 64, 128 and 224 px).
DEFAULT_MAP_METHOD = "patch"


def _restore_patches(est, tensors: dict):
    if tensors.get("reference_patches_") is None:  # an older save, or feature vectors
        return None
    patches = saved_array(tensors, "reference_patches_", ndim=2)
    require(est.encoder_ is not None, "reference_patches_",
            "a detector fitted on feature vectors has no patches")
    channels = patch_channels(est.encoder_, est.backbone_spec_, est.image_size_)
    require(patches.shape[1] == channels, "reference_patches_",
            f"expected patches of {channels} numbers (the network's patch stage), got "
            f"{patches.shape[1]}")
    return patches.astype(np.float32, copy=False)


class AnomalyMapMixin:
    """Adds ``anomaly_maps`` to a fitted image detector (network + kNN scorer)."""

    def _fit_reference_patches(self, source) -> None:
        """The gallery of normal patches ``method="patch"`` compares with (images only)."""
        self.reference_patches_ = (None if self.encoder_ is None else
                                   self._network().reference_patches(
                                       source, batch_size=self.batch_size,
                                       precision=self.precision_["features"]))

    def _card_entries(self) -> dict:
        """The patch maps' entry of the model card, after the network's and the kNN's."""
        patches = self.reference_patches_
        return {
            **super()._card_entries(),
            "reference_patches": (None if patches is None
                                  else [int(patches.shape[0]), int(patches.shape[1])]),
        }

    def anomaly_maps(self, X, method=DEFAULT_MAP_METHOD):
        """Per image, a map of where its anomaly score comes from, at the image's resolution.

        The score stays the method's (the summed squared distance to the nearest training
        features); the map explains it. Larger values mark the places that make the image
        depart from its nearest normal training images; 0 means no contribution.

        - ``"patch"`` (the default): the method's nearest-neighbour rule applied to
          places: at each cell of a backbone stage's feature map, the distance from the
          image's patch to the nearest patch of the normal training images (up to 256 of
          them, evenly spread, kept at ``fit`` as ``reference_patches_``). The stage is
          the stride-8 one while its grid has at most 16 cells a side, else stride 16
          (8 x 8 cells at 64 px, 16 x 16 at 128 px, 14 x 14 at 224 px). Values are
          distances in feature units. One forward pass to that stage per image.
          ``partial_fit`` does not add patches.
        - ``"layercam"``: LayerCAM of the anomaly score on every stage of
          the backbone from stride 4 on, each weighed position by position by its positive
          gradients, scaled to a maximum of 1 and averaged (values in [0, 1]). Its finest
          stage has ``image_size / 4`` cells a side (16 x 16 at 64 px), so it works at
          the small sizes fits use; one forward and one backward pass per image.
        - ``"gradient"``: Grad-CAM of the anomaly score on the backbone's last
          convolutional feature map (``image_size / 32`` cells a side, e.g. 7 x 7 at
          224 px), upsampled; one forward and one short backward pass per image. As
          coarse as that grid (2 x 2 at 64 px): below ``image_size=64`` it has a single
          cell and the map is flat (0, with a warning).
        - ``"occlusion"``: each of 7 x 7 overlapping square patches (a quarter of
          ``image_size`` a side, as the network sees the image) is painted in the
          image's mean colour, and the drop of the anomaly score is spread over the
          patch; the map is the mean drop per pixel minus its smallest value, in units
          of the score. 49 forward passes per image.

        The network sees only the central crop of each image (see ``image_size``); the
        map is 0 outside it, where the score does not depend on the pixels.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3]), or sequence of image \
                paths / PIL images
            Images of any size (resized as in ``fit``), or image files of any sizes.
        method : {"patch", "layercam", "gradient", "occlusion"}, default="patch"
            How the map is computed (see above). On synthetic defects patch maps located
            them best at every size measured, most of all at 64 px where the image score's
            gradient hardly moves; LayerCAM better than Grad-CAM, and both better and many
            times faster than occlusion (``docs/guide/anomaly_maps.rst``). The gradient
            methods explain the image's score itself.

        Returns
        -------
        maps : ndarray of shape (n_samples, height, width), or list of ndarray
            float32, non-negative, at ``X``'s own resolution. For an array ``X`` one array;
            for image files a list
            with one ``(height_i, width_i)`` map per file, each at the file's size.

        Examples
        --------
        >>> import numpy as np
        >>> from skmsc import MeanShiftedContrastiveDetector
        >>> rng = np.random.default_rng(0)
        >>> X = rng.integers(100, 140, size=(12, 64, 64), dtype=np.uint8)  # plain grey
        >>> det = MeanShiftedContrastiveDetector(
        ...     "efficientnet_lite0", epochs=0, image_size=128, batch_size=16, random_state=0
        ... ).fit(X)
        >>> scratched = X[:1].copy()
        >>> scratched[0, 4:7, 8:56] = 255  # a bright scratch in the top rows
        >>> maps = det.anomaly_maps(scratched)
        >>> maps.shape, maps.dtype
        ((1, 64, 64), dtype('float32'))
        >>> bool(maps[0, :32].sum() > maps[0, 32:].sum())  # the map's mass is on top
        True
        """
        check_is_fitted(self)
        model = snapshot(self)  # one consistent state, even while another thread fits
        if method not in MAP_METHODS:
            raise ValueError(
                f"method={method!r} is not a way of computing anomaly maps; use one of "
                f"{list(MAP_METHODS)}."
            )
        if model.encoder_ is None:
            raise ValueError(
                "This detector was fitted on feature vectors, so there is no image to map. "
                "Fit it on images (an array or files) to get anomaly maps."
            )
        patches = getattr(model, "reference_patches_", None)
        if method == "patch" and patches is None:
            raise ValueError(
                "This detector has no reference patches for method='patch': it was saved "
                "by an skmsc without patch maps. Use method='layercam', or fit it again."
            )
        source = model._validated(X)
        maps = model._network().anomaly_maps(
            source, index=model._index, scorer=model.knn_scorer(), patches=patches,
            method=method, batch_size=model.batch_size, precision=model.precision,
        )
        if source.sample_shape is None:  # image files: each map at its file's size
            return maps
        height, width = source.sample_shape[:2]
        return np.stack(maps) if maps else np.empty((0, height, width), dtype=np.float32)

    _FITTED_FIELDS = (
        # Saved before patch maps existed (or fitted on feature vectors): none.
        FittedField("reference_patches_", lambda est, fitted, tensors: _restore_patches(
            est, tensors), tensor=True, older=lambda est: None,
            save=lambda est: (OMIT if est.reference_patches_ is None
                              else est.reference_patches_)),
    )
