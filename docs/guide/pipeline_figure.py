"""Draw the method's pipeline (rendered into the user guide by matplotlib's plot directive)."""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLORS = {"data": "#dbe9f6", "net": "#fde2c8", "math": "#e2f0d9", "out": "#eadcf2"}


def box(ax, x, y, text, kind, width=2.2, height=1.0):
    ax.add_patch(FancyBboxPatch(
        (x - width / 2, y - height / 2), width, height,
        boxstyle="round,pad=0.05,rounding_size=0.15", facecolor=COLORS[kind],
        edgecolor="0.3", linewidth=1,
    ))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def arrow(ax, start, end, text=None, rad=0.0):
    ax.add_patch(FancyArrowPatch(
        start, end, arrowstyle="-|>", mutation_scale=12, color="0.25",
        connectionstyle=f"arc3,rad={rad}", linewidth=1.1,
    ))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.18, text,
                ha="center", va="bottom", fontsize=7.5, color="0.25")


fig, ax = plt.subplots(figsize=(12, 4.6))
ax.set_xlim(0, 17.0)
ax.set_ylim(0, 6.6)
ax.axis("off")

ax.text(0.1, 6.35, "fit(X): normal images only", fontsize=10, weight="bold")
top = 5.0
box(ax, 1.3, top, "normal training\nimages X", "data", width=2.0)
box(ax, 4.3, top, "pretrained backbone\n(ImageNet; ResNet152\nor EfficientNet-Lite0)", "net",
    width=2.9, height=1.2)
box(ax, 7.5, top, "unit-norm features\n$\\phi(x)$", "math", width=2.4)
box(ax, 10.7, top, "centre\n$c$ = mean of $\\phi(x)$\n(fixed from now on)", "math",
    width=2.8, height=1.2)
arrow(ax, (2.3, top), (2.85, top))
arrow(ax, (5.75, top), (6.3, top))
arrow(ax, (8.7, top), (9.3, top))

mid = 2.9
box(ax, 4.3, mid, "two augmented views\nper image (MoCo-v2)", "data", width=2.6)
box(ax, 8.0, mid, "mean-shifted contrastive loss\non $(\\phi(x) - c)\\,/\\,\\|\\phi(x) - c\\|$",
    "math", width=3.6, height=1.1)
box(ax, 12.2, mid, "fine-tuned backbone\n(SGD, BatchNorm\nstatistics frozen)", "net",
    width=2.6, height=1.1)
box(ax, 15.5, mid, "features of the\ntraining images\n= kNN gallery", "out", width=2.4, height=1.1)
arrow(ax, (1.3, top - 0.5), (2.95, mid), rad=0.15)
ax.text(1.1, 3.6, "every epoch", fontsize=7.5, color="0.25")
arrow(ax, (5.6, mid), (6.2, mid))
arrow(ax, (10.7, top - 0.6), (8.8, mid + 0.55), rad=0.0)
arrow(ax, (9.8, mid), (10.9, mid), "gradients")
arrow(ax, (13.5, mid), (14.3, mid))

ax.text(0.1, 1.55, "score_samples(X_new) / predict(X_new)", fontsize=10, weight="bold")
low = 0.7
box(ax, 1.3, low, "new image", "data", width=2.0, height=0.8)
box(ax, 4.3, low, "fine-tuned backbone", "net", width=2.6, height=0.8)
box(ax, 8.2, low, "sum of squared distances to the\n$k$ nearest training features",
    "math", width=3.8, height=0.8)
box(ax, 12.3, low, "score = - distance\ndecision = score - offset_", "out", width=3.2,
    height=0.8)
box(ax, 15.6, low, "predict: +1 normal,\n-1 anomaly", "out", width=2.4, height=0.8)
arrow(ax, (2.3, low), (3.0, low))
arrow(ax, (5.6, low), (6.4, low))
arrow(ax, (15.5, mid - 0.55), (9.9, low + 0.4), rad=-0.1)
arrow(ax, (10.1, low), (10.7, low))
arrow(ax, (13.9, low), (14.4, low))
plt.show()
