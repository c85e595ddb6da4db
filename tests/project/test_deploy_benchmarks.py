"""The deployment benchmarks run and write what they measured (tiny sizes)."""

import json

import pytest


def test_deploy_speed_writes_each_configuration(tmp_path):
    pytest.importorskip("onnxruntime")
    from benchmarks import deploy_speed

    deploy_speed.main(["--sizes", "32", "--n", "16", "--train", "16", "--repeats", "1",
                       "--no-tune", "--configs", "torch float32,torch auto,onnxruntime float32",
                       "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {row["config"]: row for row in results["scoring"]}
    assert set(rows) == {"torch float32", "torch auto", "onnxruntime float32"}
    assert rows["torch float32"]["vs_float32"] == 1.0
    assert rows["onnxruntime float32"]["max_abs_score_diff_vs_float32"] < 1e-4
    assert "x torch auto" in (tmp_path / "results.md").read_text()


def test_gallery_benchmark_writes_its_table(tmp_path):
    from skmsc.datasets import load_fashion_mnist

    try:
        load_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    from benchmarks import gallery

    gallery.main(["--classes", "0", "--n-train", "300", "--n-test", "200", "--fractions",
                  "0.1", "--repeats", "1", "--bootstrap", "5", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["setting"], r["gallery"]) for r in rows] == [
        ("whole", 300), ("kmeans 0.1", 30), ("coreset 0.1", 30)]
    assert all(0.5 < r["roc_auc"] <= 1 and 0 <= r["normal_test_flagged"] <= 1 for r in rows)
    assert "normal test flagged" in (tmp_path / "results.md").read_text()


def test_gallery_threshold_benchmark_writes_its_table(tmp_path):
    from skmsc.datasets import load_fashion_mnist

    try:
        load_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    from benchmarks import gallery_threshold

    gallery_threshold.main(["--classes", "0", "--n-images", "300", "--n-fit", "200",
                            "--fractions", "0.1", "--contaminations", "0.1,0.2",
                            "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["setting"], r["gallery"], r["contamination"]) for r in rows] == [
        (name, size, c) for name, size in [("whole", 200), ("kmeans 0.1", 20),
                                           ("coreset 0.1", 20)] for c in (0.1, 0.2)]
    for r in rows:  # 100 held-out training images and the class's 300 test images
        assert r["held_out"] == 400 and r["rate"] == r["flagged"] / 400
        assert r["interval"][0] <= r["rate"] <= r["interval"][1]
    assert "flagged / asked" in (tmp_path / "results.md").read_text()
