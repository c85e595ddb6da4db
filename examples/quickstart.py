"""Quickstart: fit on one Fashion-MNIST class, score the test set, print ROC-AUC and time.

Runs offline on the CPU with the EfficientNet-Lite0 ImageNet weights that install with
the package. The data come from Debian's ``dataset-fashion-mnist`` (``make quickstart``
installs it); without them the script falls back to scikit-learn's digits.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its threads

import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from skmsc import MeanShiftedContrastiveDetector  # noqa: E402
from skmsc.datasets import load_fashion_mnist, one_class_split, subsample  # noqa: E402


def load_data(normal_class=7, n_train=600, n_test_per_class=100):
    try:
        train = subsample(load_fashion_mnist("train"), n_train, random_state=0)
        test = subsample(load_fashion_mnist("test"), n_test_per_class, random_state=0)
        name = f"Fashion-MNIST, normal class {train.class_names[normal_class]!r}"
        split = one_class_split(train, test, normal_class)
        return name, split.X_train, split.X_test, split.y_test
    except FileNotFoundError:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X.reshape(-1, 8, 8) * 255 / 16).astype(np.uint8)
        return "scikit-learn digits, normal digit 0", X[:1000][y[:1000] == 0], X[1000:], (
            y[1000:] == 0
        ).astype(int)


def main():
    name, X_train, X_test, y_test = load_data()
    print(f"{name}: {len(X_train)} normal training images, {len(X_test)} test images")
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", epochs=2, image_size=64, batch_size=64, random_state=0,
        verbose=True,
    )
    start = time.perf_counter()
    det.fit(X_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    decision = det.decision_function(X_test)
    score_seconds = time.perf_counter() - start
    print(f"fit:   {fit_seconds:.1f} s ({len(X_train) * det.epochs / fit_seconds:.1f} "
          f"images/s over {det.epochs} epochs, loss per epoch {np.round(det.loss_curve_, 4)})")
    print(f"score: {score_seconds:.1f} s ({len(X_test) / score_seconds:.1f} images/s)")
    print(f"ROC-AUC (normal = positive): {roc_auc_score(y_test, decision):.4f}")
    print(flagged_summary(decision, y_test, det))


def flagged_summary(decision, y_test, det) -> str:
    """What ``predict`` flagged, split into anomalies caught and false alarms, and why.

    ``decision`` is ``det.decision_function(X_test)`` (negative = flagged), ``y_test`` is 1
    for the normal class and 0 for the other classes.
    """
    decision, y_test = np.asarray(decision), np.asarray(y_test)
    flagged, normal = decision < 0, y_test == 1
    return "\n".join([
        f"flagged as anomalous: {flagged.sum()} of {len(decision)} test images "
        f"({flagged.mean():.1%}): {flagged[~normal].sum()} of the {(~normal).sum()} images "
        f"of other classes (anomalies caught, {flagged[~normal].mean():.1%}) and "
        f"{flagged[normal].sum()} of the {normal.sum()} images of the normal class (false "
        f"alarms, {flagged[normal].mean():.1%}).",
        f"  The threshold (offset_ = {det.offset_:.4f} on score_samples) is set by "
        f"contamination={det.contamination!r}: it flags {det.contamination_:.0%} of new "
        "normal images (a quantile of the training images' leave-one-out scores). It is "
        "a false-alarm rate, not the expected share of anomalies; the share flagged here "
        "is high because most test images are other classes. det.set_threshold(0.05) "
        "moves it without refitting.",
    ])


if __name__ == "__main__":
    main()
