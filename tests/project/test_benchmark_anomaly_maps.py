"""benchmarks/anomaly_maps.py: its defects, metrics and report, on small made-up inputs."""

import json

import numpy as np
import pytest

from benchmarks import anomaly_maps as bench


def test_ground_truth_is_the_pixels_the_defect_changed():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    X[:5] = 0  # black images: a pasted patch of black changes nothing
    defective, truth, rows = bench.paste_defects(X, seed=0, min_change=0.1, min_pixels=4)
    assert len(defective) == len(truth) == len(rows) <= 30
    changed = np.abs(defective.astype(int) - X[rows]) >= 0.1 * 255
    np.testing.assert_array_equal(truth, changed)
    assert (truth.reshape(len(truth), -1).sum(axis=1) >= 4).all()
    unchanged = np.setdiff1d(np.arange(30), rows)
    assert set(unchanged) <= set(range(5))  # only an all-black image can lose its defect


def test_metrics_of_perfect_inverted_and_flat_maps():
    truth = np.zeros((3, 10, 10), bool)
    truth[:, 2:5, 3:6] = True
    perfect = bench.map_metrics(truth.astype(np.float32), truth)
    assert perfect["pixel_roc_auc"] == 1.0 and perfect["pointing_game"] == 1.0
    inverted = bench.map_metrics((~truth).astype(np.float32), truth)
    assert inverted["pixel_roc_auc"] == 0.0 and inverted["pointing_game"] == 0.0
    flat = bench.map_metrics(np.zeros((3, 10, 10), np.float32), truth)
    assert flat["pixel_roc_auc"] == 0.5 and flat["flat_maps"] == 3
    assert flat["pointing_game"] == 0.0  # a flat map points at its first pixel


def test_paired_interval_contains_the_difference():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 0.1, size=200)
    low, high = bench.paired_interval(a, a - 0.3)
    assert low == pytest.approx(0.3) and high == pytest.approx(0.3)
    low, high = bench.paired_interval(a, rng.normal(1.0, 0.1, size=200))
    assert low < 0 < high


def test_report_lists_every_method_of_every_result(tmp_path):
    method = {"pixel_roc_auc": 0.9, "mean_per_image_roc_auc": 0.85, "pointing_game": 0.4,
              "seconds_per_image": 0.02}
    payload = {
        "dataset": "elpv", "command": "python -m benchmarks.anomaly_maps --dataset elpv",
        "methods": {"gradient": method, "occlusion": {**method, "pointing_game": 0.1}},
        "comparisons": {"gradient - occlusion": {"mean_per_image_roc_auc": [0.1, 0.2],
                                                 "pointing_game": [0.2, 0.4]}},
        "detector": {"image_size": 224, "epochs": 0, "precision_": {"features": "bfloat16"}},
        "n_defective": 290, "n_left_out": 10, "n_held_out": 300, "min_pixels": 4,
        "min_change": 0.1, "image_shape": [300, 300], "n_train": 905,
        "image_roc_auc": 0.97, "n_flagged": 250, "truth_outside_crop": 0.05,
        "chance_pointing": 0.03, "load_average": {"start": [1.0], "end": [2.0]},
    }
    (tmp_path / "elpv.json").write_text(json.dumps(payload))
    text = bench.report(tmp_path, tmp_path / "table.txt")
    assert (tmp_path / "table.txt").read_text() == text
    assert text.count("   * - ELPV solar cells") == 2
    assert "0.400 (0.030)" in text and "0.100 (0.030)" in text
    assert "[+0.100, +0.200]" in text and "--dataset elpv" in text


def test_report_has_a_row_per_image_size_smallest_first(tmp_path):
    """Issue #25 item 10: the table names the image size of every row."""
    method = {"pixel_roc_auc": 0.9, "mean_per_image_roc_auc": 0.85, "pointing_game": 0.4,
              "seconds_per_image": 0.02}
    for size, pointing in ((224, 0.3), (64, 0.45)):
        payload = {
            "dataset": "elpv", "command": f"python benchmarks/anomaly_maps.py --image-size {size}",
            "methods": {"layercam": {**method, "pointing_game": pointing}},
            "comparisons": {},
            "detector": {"image_size": size, "epochs": 0,
                         "precision_": {"features": "bfloat16"}},
            "n_defective": 290, "n_left_out": 10, "n_held_out": 300, "min_pixels": 4,
            "min_change": 0.1, "image_shape": [300, 300], "n_train": 905,
            "image_roc_auc": 0.97, "n_flagged": 250, "truth_outside_crop": 0.05,
            "chance_pointing": 0.03, "load_average": {"start": [1.0], "end": [2.0]},
        }
        (tmp_path / f"elpv-{size}px.json").write_text(json.dumps(payload))
    text = bench.report(tmp_path, tmp_path / "table.txt")
    rows = text.split("   * - ELPV solar cells")[1:]
    assert [row.split("\n")[1].strip() for row in rows] == ["- 64", "- 224"]
    assert "0.450 (0.030)" in rows[0] and "0.300 (0.030)" in rows[1]
    assert "**ELPV solar cells, image_size 64**" in text
