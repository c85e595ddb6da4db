"""Synthetic defects with masks (``_safeguard.synthetic_anomalies``), for the map benchmark.

The safeguard's own use (default kinds, no masks) must not change: same images from the
same generator state, whatever the new options.
"""

import numpy as np
import pytest
import torch

from skmsc.nn._safeguard import LOCAL_KINDS, SAFEGUARD_KINDS, synthetic_anomalies


def _images(n=40, height=24, width=31, seed=0):
    # Distinct values everywhere, so every replaced pixel changes.
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(size=(n, 3, height, width)).astype(np.float32))


@pytest.mark.parametrize("kinds", [SAFEGUARD_KINDS, LOCAL_KINDS, ("blob",), ("scar",)])
def test_masks_are_exactly_the_replaced_pixels(kinds):
    images = _images()
    out, masks = synthetic_anomalies(images, torch.Generator().manual_seed(3), kinds=kinds,
                                     return_masks=True)
    assert masks.shape == (40, 24, 31) and masks.dtype == torch.bool
    changed = (out != images).any(dim=1)
    assert torch.equal(changed, masks)
    assert bool(masks.flatten(1).any(dim=1).all())  # every image got a defect


def test_local_kinds_are_local_and_blends_cover_everything():
    images = _images()
    _, local = synthetic_anomalies(images, torch.Generator().manual_seed(0), kinds=LOCAL_KINDS,
                                   return_masks=True)
    assert float(local.float().mean(dim=(1, 2)).max()) < 0.5
    _, blends = synthetic_anomalies(images, torch.Generator().manual_seed(0), kinds=("blend",),
                                    return_masks=True)
    assert bool(blends.all())


def test_masks_do_not_change_the_safeguards_images():
    images = _images(seed=1)
    plain = synthetic_anomalies(images, torch.Generator().manual_seed(5))
    with_masks, _ = synthetic_anomalies(images, torch.Generator().manual_seed(5),
                                        return_masks=True)
    explicit = synthetic_anomalies(images, torch.Generator().manual_seed(5),
                                   kinds=("cut-paste", "scar", "blend"))
    assert torch.equal(plain, with_masks) and torch.equal(plain, explicit)


def test_blobs_are_filled_ellipses_of_a_bounded_area():
    images = _images(n=60, height=64, width=64)
    _, masks = synthetic_anomalies(images, torch.Generator().manual_seed(2), kinds=("blob",),
                                   return_masks=True)
    area = masks.float().mean(dim=(1, 2))
    assert float(area.min()) > 0.005 and float(area.max()) < 0.09  # 1-8 % of the image


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="kinds must be"):
        synthetic_anomalies(_images(), torch.Generator(), kinds=("crack",))
    with pytest.raises(ValueError, match="kinds must be"):
        synthetic_anomalies(_images(), torch.Generator(), kinds=())
