"""
Where is the defect? Anomaly maps on a brick wall
=================================================

:class:`~skmsc.MeanShiftedContrastiveDetector` scores a whole image. ``anomaly_maps``
says where that score comes from: per image, a map at the image's resolution that is
large where the image departs from its nearest normal training images.
:func:`skmsc.plotting.plot_anomaly_maps` draws it over the image, next to the score, the
threshold decision and the nearest normal image.

The normal images are tiles of scikit-image's brick-wall photograph (a texture, as in
industrial inspection); four held-out tiles get a defect drawn on them. EfficientNet-Lite0
(ImageNet weights installed with skmsc) is used without fine-tuning (``epochs=0``) to keep
the example fast; the maps explain the fine-tuned detector's score the same way.
"""

# sphinx_gallery_start_ignore
# ruff: noqa: E402
import os

# Before torch starts its threads: idle OpenMP threads must not spin (slow on small VMs).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# sphinx_gallery_end_ignore
import matplotlib.pyplot as plt
import numpy as np
from skimage import data

from skmsc import MeanShiftedContrastiveDetector
from skmsc.plotting import plot_anomaly_maps

# %%
# Normal images: tiles of a brick wall
# ------------------------------------
# 96 x 96 tiles of the 512 x 512 grey photograph, every 32 pixels: 169 tiles, of which
# 150 train the detector and the rest are held out.
wall = data.brick()
tiles = np.stack([wall[r : r + 96, c : c + 96] for r in range(0, 417, 32)
                  for c in range(0, 417, 32)])
order = np.random.default_rng(0).permutation(len(tiles))
X_train, held_out = tiles[order[:150]], tiles[order[150:]]
det = MeanShiftedContrastiveDetector(
    "efficientnet_lite0", epochs=0, image_size=224, batch_size=32, random_state=0
).fit(X_train)

# %%
# Four defects, and one clean tile
# --------------------------------
# A dark scratch, a bright stain, a patch of gravel pasted in, and a smeared (blurred)
# corner; the last tile stays clean.
from scipy.ndimage import gaussian_filter

X_test = held_out[:5].copy()
rows, cols = np.mgrid[0:96, 0:96]
scratch = np.abs((rows - 20) - 0.6 * (cols - 10)) < 1.5
X_test[0][scratch & (cols > 10) & (cols < 80)] = 20
X_test[1][(rows - 60) ** 2 / 12**2 + (cols - 30) ** 2 / 8**2 < 1] = 250
X_test[2, 50:80, 55:85] = data.gravel()[100:130, 100:130]
X_test[3, :40, 56:] = gaussian_filter(X_test[3, :40, 56:].astype(float), 3).astype(np.uint8)
print("decision_function (< 0: anomaly):", np.round(det.decision_function(X_test), 3))

# %%
# The patch map (the default)
# ---------------------------
# The method's nearest-neighbour rule applied to places: ``fit`` kept every cell of one
# backbone stage's feature map (14 x 14 cells at 224 px) for up to 256 training images;
# each cell of a new image gets its distance to the nearest of those normal patches. One
# forward pass per image, up to that stage. Its values keep their scale (feature units),
# so the clean tile's map stays low. Outside the central crop the network sees nothing,
# and the map is 0 there.
fig = plot_anomaly_maps(det, X_test, X_train)

# %%
# The LayerCAM map
# ----------------
# LayerCAM of the kNN score on every stage of the network from stride 4 on (56 x 56 down
# to 7 x 7 cells at 224 px), each scaled to its own maximum and averaged: it explains the
# image's score itself, with one forward and one backward pass per image. A map says
# *where*, not *how much*: its values lie in [0, 1] for every image, the clean tile's too,
# so compare images by their scores.
fig = plot_anomaly_maps(det, X_test, X_train, method="layercam")

# %%
# The gradient map
# ----------------
# Grad-CAM of the kNN score on the last feature map alone (7 x 7 cells at 224 px, 2 x 2
# at 64 px), upsampled. Its values keep their scale: the clean tile's map has a much
# smaller maximum than the defects' (see the titles).
fig = plot_anomaly_maps(det, X_test, X_train, method="gradient")

# %%
# The occlusion map
# -----------------
# Each of 7 x 7 patches is painted in the image's mean colour and the drop of the score is
# spread over it: 49 forward passes per image. On synthetic defects on Fashion-MNIST and
# on solar-cell images it located them less well than the gradient maps (see the guide's
# "Where is the anomaly?" page for the measurement). Its map is the drop minus the
# smallest drop of the image, so even the clean tile shows the places whose painting
# lowered its score most.
fig = plot_anomaly_maps(det, X_test, X_train, method="occlusion")
plt.show()
