"""
Finding anomalous handwritten digits
====================================

Train :class:`~skmsc.MeanShiftedContrastiveDetector` on images of one digit only (the
"normal" class), then score a test set holding every digit: the other digits are the
anomalies. This is the one-class protocol of the paper, on scikit-learn's small 8x8
digits so that it runs in seconds on a CPU.

The backbone is EfficientNet-Lite0, whose ImageNet weights install with skmsc (no
download). The images are upscaled to 32x32 pixels and fine-tuned for a single epoch to
keep the example fast; the paper uses 224x224 pixels, ResNet152 and 20 epochs.
"""

# sphinx_gallery_start_ignore
# ruff: noqa: E402
import os

# Before torch starts its threads: idle OpenMP threads must not spin (slow on small VMs).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# sphinx_gallery_end_ignore
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from skmsc import MeanShiftedContrastiveDetector

# %%
# The data: normal digit 0
# ------------------------
# The digits are 8x8 grayscale images with values 0-16; the detector takes uint8 images
# (0-255) or floats in [0, 1], so scale them to [0, 1]. The first 1,000 images give the
# training zeros; the remaining ones, all digits, are the test set.
digits = load_digits()
images = digits.images / 16.0
normal_digit = 0
X_train = images[:1000][digits.target[:1000] == normal_digit]
X_test, y_test = images[1000:], (digits.target[1000:] == normal_digit).astype(int)
print(f"{len(X_train)} training images of digit {normal_digit}; "
      f"{len(X_test)} test images, {y_test.sum()} of them normal")

# %%
# Fit and score
# -------------
# ``decision_function`` is negative for images the detector calls anomalous; ROC-AUC
# measures how well it ranks the normal test images above the others (1.0 is perfect).
det = MeanShiftedContrastiveDetector(
    "efficientnet_lite0", image_size=32, epochs=1, batch_size=32, random_state=0
)
det.fit(X_train)
decision = det.decision_function(X_test)
print(f"ROC-AUC (normal = positive): {roc_auc_score(y_test, decision):.3f}")
print(f"flagged as anomalous: {np.mean(decision[y_test == 1] < 0):.1%} of the test zeros, "
      f"{np.mean(decision[y_test == 0] < 0):.1%} of the other digits")

# %%
# Where the threshold falls
# -------------------------
# ``offset_`` was chosen on the training images so that ``contamination`` ("auto": 1%)
# of new normal images fall below it. The other digits score far lower.
fig, ax = plt.subplots(figsize=(7, 3.2))
bins = np.linspace(decision.min(), decision.max(), 40)
ax.hist(decision[y_test == 1], bins=bins, alpha=0.7, label=f"digit {normal_digit} (normal)")
ax.hist(decision[y_test == 0], bins=bins, alpha=0.7, label="other digits (anomalies)")
ax.axvline(0, color="k", linestyle="--", label="threshold (decision = 0)")
ax.set_xlabel("decision_function")
ax.set_ylabel("test images")
ax.legend()
fig.tight_layout()

# %%
# The most and the least normal test images
# -----------------------------------------
order = np.argsort(decision)
fig, axes = plt.subplots(2, 8, figsize=(8, 2.6))
for row, (title, picks) in enumerate(
    [("most anomalous", order[:8]), ("most normal", order[::-1][:8])]
):
    for ax, i in zip(axes[row], picks, strict=True):
        ax.imshow(X_test[i], cmap="gray_r")
        ax.set_title(f"{decision[i]:.2f}", fontsize=8)
        ax.axis("off")
    axes[row, 0].text(-0.4, 0.5, title, transform=axes[row, 0].transAxes,
                      ha="right", va="center", fontsize=9)
fig.tight_layout()
plt.show()
