import os

# On this project's 2-core VMs, OpenMP threads that spin while waiting make small
# convolutions up to 25x slower (measured: ResNet18 on 8 images of 32x32, 0.64 s with
# spinning, 0.014 s passive). Must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits():
    """Real 8x8 handwritten digits as float images in [0, 1], shipped with scikit-learn."""
    X, y = load_digits(return_X_y=True)
    return (X.reshape(-1, 8, 8) / 16.0), y


@pytest.fixture(scope="session")
def small_rgb_images():
    """30 random uint8 RGB images; for tests that need shapes, not meaning."""
    return np.random.default_rng(0).integers(0, 256, size=(30, 20, 24, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def fitted_lite0(digits):
    """A small real fit shared by tests that only read from it."""
    from skmsc import MeanShiftedContrastiveDetector

    X, y = digits
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", epochs=1, batch_size=16, image_size=32, random_state=0
    )
    return det.fit(X[y == 0][:48])
