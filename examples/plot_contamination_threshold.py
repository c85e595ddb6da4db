"""
How ``contamination`` sets the threshold
========================================

The detector scores a sample by minus the summed squared distance to its ``n_neighbors``
nearest training samples. ``contamination`` decides where the line between "normal" and
"anomaly" is drawn: it is the false-alarm rate, the fraction of new *normal* samples
flagged. ``offset_`` is the ``contamination`` quantile of the *leave-one-out* training
scores (each training sample scored against the others). Moving it needs no refit:
``set_threshold`` recomputes ``offset_`` from those stored scores.

A 2-D array is taken as feature vectors, which skips the neural network: here the kNN
scorer and its threshold are shown on two-dimensional points, where they can be drawn.
"""

import matplotlib.pyplot as plt
import numpy as np

from skmsc import MeanShiftedContrastiveDetector

rng = np.random.default_rng(0)
X_train = np.vstack([rng.normal(size=(600, 2)), rng.normal(size=(400, 2)) * 0.5 + [3, 3]])
X_new = np.vstack([rng.normal(size=(3000, 2)), rng.normal(size=(2000, 2)) * 0.5 + [3, 3]])

# %%
# Fraction of new normal samples flagged
# --------------------------------------
# The new samples come from the same distribution as the training ones, so every flag is
# a false alarm: the rate follows ``contamination``.
# One fit; each threshold comes from the stored leave-one-out scores.
det = MeanShiftedContrastiveDetector().fit(X_train)
boundaries = {}
for contamination in (0.01, 0.05, 0.2):
    det.set_threshold(contamination)
    flagged = np.mean(det.predict(X_new) == -1)
    print(f"contamination={contamination:<5} offset_={det.offset_:8.4f}  "
          f"new normal samples flagged: {flagged:.1%}")
    boundaries[contamination] = det.offset_

# %%
# The decision boundaries
# -----------------------
# ``decision_function`` is 0 on the boundary and negative outside it.
xx, yy = np.meshgrid(np.linspace(-4, 5.5, 200), np.linspace(-4, 5.5, 200))
grid = np.c_[xx.ravel(), yy.ravel()]
fig, ax = plt.subplots(figsize=(5.5, 5))
ax.scatter(*X_train.T, s=6, color="0.4", label="training samples")
colors = {0.01: "tab:blue", 0.05: "tab:orange", 0.2: "tab:red"}
scores = det.score_samples(grid).reshape(xx.shape)
for contamination, offset in boundaries.items():
    # decision_function = score_samples - offset_ is 0 on the boundary.
    ax.contour(xx, yy, scores - offset, levels=[0], colors=colors[contamination])
    ax.plot([], [], color=colors[contamination], label=f"contamination={contamination}")
ax.set_aspect("equal")
ax.legend(loc="lower right", fontsize=8)
ax.set_title("decision_function = 0")
fig.tight_layout()
plt.show()
