"""Patch maps (``method="patch"``, ``skmsc.nn._patches``): each place's distance to the
nearest normal patch of the training images."""

import numpy as np
import pytest
import torch
from conftest import FAST
from saved_models import rebind

from skmsc import MeanShiftedContrastiveDetector
from skmsc.nn import _patches
from skmsc.nn._explain import to_input_resolution
from skmsc.nn._patches import (
    nearest_patch_distances,
    patch_features,
    patch_stage,
    reference_rows,
)
from skmsc.nn._preprocess import eval_inputs
from skmsc.persistence import TENSORS_NAME


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    det = MeanShiftedContrastiveDetector(**dict(FAST, image_size=64, epochs=0,
                                                precision="float32")).fit(X[y == 0][:30])
    return det, X[y == 0][:30], X[y == 3][:3]


def _by_hand_features(det, images):
    inputs = eval_inputs(images, det.backbone_spec_, det.image_size_, torch.device("cpu"))
    stage = patch_stage(det.encoder_, det.backbone_spec_, det.image_size_)
    return inputs, patch_features(det.encoder_, inputs, spec=det.backbone_spec_,
                                  stage=stage)


def test_the_gallery_is_every_cell_of_the_reference_images(fitted):
    det, train, _ = fitted
    _, features = _by_hand_features(det, train)
    by_hand = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]).numpy()
    np.testing.assert_allclose(det.reference_patches_, by_hand, rtol=1e-5, atol=1e-6)
    assert det.reference_patches_.shape == (30 * 8 * 8, 40)  # Lite0 at 64 px: stride 8


def test_a_map_is_each_cells_distance_to_the_nearest_normal_patch(fitted):
    det, _, queries = fitted
    inputs, features = _by_hand_features(det, queries)
    cells = features.permute(0, 2, 3, 1).numpy()  # (b, g, g, C)
    gallery = det.reference_patches_
    nearest = np.sqrt(((cells[..., None, :] - gallery) ** 2).sum(-1)).min(-1)  # (b, g, g)
    grid = torch.from_numpy(nearest)[:, None]
    upsampled = torch.nn.functional.interpolate(grid, size=inputs.shape[-2:],
                                                mode="bilinear", align_corners=False)[:, 0]
    expected = np.stack([to_input_resolution(m, *queries.shape[1:3], det.backbone_spec_,
                                             det.image_size_) for m in upsampled])
    np.testing.assert_allclose(det.anomaly_maps(queries), expected, rtol=1e-4,
                               atol=1e-4 * expected.max())


def test_a_training_image_is_at_distance_zero_where_it_was_sampled(fitted):
    det, train, _ = fitted
    _, features = _by_hand_features(det, train[:2])
    cells = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    distances = nearest_patch_distances(cells, torch.from_numpy(det.reference_patches_))
    assert distances.max() < 1e-2


def test_nearest_distances_agree_with_cdist_across_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    queries = torch.from_numpy(rng.normal(size=(50, 7)).astype(np.float32))
    gallery = torch.from_numpy(rng.normal(size=(40, 7)).astype(np.float32))
    expected = torch.cdist(queries, gallery).amin(dim=1)
    monkeypatch.setattr(_patches, "_PAIRS_PER_CHUNK", 3 * 40)  # 3 queries per chunk
    np.testing.assert_allclose(nearest_patch_distances(queries, gallery), expected,
                               rtol=1e-4, atol=1e-4)


def test_the_gallery_keeps_a_seeded_subset_beyond_its_budget(fitted, monkeypatch):
    det, train, _ = fitted
    full = det.reference_patches_
    monkeypatch.setattr(_patches, "MAX_PATCH_VALUES", 100 * full.shape[1])
    network = det._network()
    kept = network.reference_patches(train, batch_size=8)
    assert kept.shape == (100, full.shape[1])
    assert all((full == row).all(axis=1).any() for row in kept)  # rows of the full one
    np.testing.assert_array_equal(network.reference_patches(train, batch_size=8), kept)


def test_reference_rows_are_spread_over_the_whole_training_set():
    rows = reference_rows(1000)
    assert len(rows) == _patches.MAP_REFERENCE_IMAGES and rows[0] == 0 and rows[-1] == 999
    assert np.all(np.diff(rows) >= 3)
    np.testing.assert_array_equal(reference_rows(5), np.arange(5))


def test_the_stage_is_stride_8_up_to_16_cells_a_side_then_stride_16(fitted):
    det, _, _ = fitted
    spec = det.backbone_spec_
    sides = {32: 4, 64: 8, 128: 16, 224: 14, 384: 24}
    for size, side in sides.items():
        stage = patch_stage(det.encoder_, spec, size)
        inputs = torch.zeros((1, 3, size, size))
        assert patch_features(det.encoder_, inputs, spec=spec,
                              stage=stage).shape[-1] == side


def test_partial_fit_and_set_device_keep_the_patches(fitted, digits):
    det, _, _ = fitted
    X, y = digits
    before = det.reference_patches_
    grown = MeanShiftedContrastiveDetector(**dict(FAST, image_size=64, epochs=0,
                                                  precision="float32")).fit(X[y == 0][:30])
    grown.partial_fit(X[y == 0][30:40]).set_device("cpu")
    np.testing.assert_array_equal(grown.reference_patches_, before)


def _edit_saved_tensors(folder, edit):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(folder / TENSORS_NAME))
    edit(tensors)
    save_file(tensors, str(folder / TENSORS_NAME))
    rebind(folder)  # the two files agree again


def test_feature_vectors_have_no_patches_and_older_saves_say_what_to_do(fitted, tmp_path):
    vectors = MeanShiftedContrastiveDetector(random_state=0).fit(
        np.random.default_rng(0).normal(size=(20, 5)))
    assert vectors.reference_patches_ is None
    det, _, queries = fitted
    folder = det.save(tmp_path / "model")
    _edit_saved_tensors(folder, lambda tensors: tensors.pop("reference_patches_"))
    older = MeanShiftedContrastiveDetector.load(folder)  # as saved before patch maps
    assert older.reference_patches_ is None
    with pytest.raises(ValueError, match="no reference patches.*method='layercam'"):
        older.anomaly_maps(queries)
    assert older.anomaly_maps(queries, method="layercam").shape == queries.shape


def test_saved_patches_of_the_wrong_shape_are_refused(fitted, tmp_path):
    det, _, _ = fitted
    folder = det.save(tmp_path / "model")
    _edit_saved_tensors(folder, lambda tensors: tensors.update(
        reference_patches_=tensors["reference_patches_"][:, :-1].copy()))
    with pytest.raises(ValueError, match="reference_patches_"):
        MeanShiftedContrastiveDetector.load(folder)
