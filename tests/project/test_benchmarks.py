"""The benchmarks (the package ``benchmarks``) and the report generator, end to end
on a tiny image folder."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import (
    epoch_rules,
    learning_curve,
    make_report,
    reproduce,
    speed,
    speed_knn,
    speed_steps,
)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """root/{train,test}/{bright,dark}/*.png: two classes a network can tell apart."""
    from PIL import Image

    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 5)):
        for name, level in (("bright", 200), ("dark", 40)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(level, 20, size=(20, 20, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


TINY = ["--size", "cpu", "--n-train", "6", "--n-test-per-class", "4", "--epochs", "1",
        "--image-size", "32", "--batch-size", "4", "--learning-rate", "1e-3",
        "--methods", "pretrained-knn", "msc", "msc-angular"]
#: TINY with the size's own tuple of methods.
TINY_SIZE_METHODS = [a for a in TINY if a not in ("--methods", "pretrained-knn", "msc",
                                                  "msc-angular")]


@pytest.fixture(scope="module")
def benchmark_run(image_folder, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    out = results / "folder-tiny"
    payload = reproduce.main(
        ["--dataset", "folder", "--root", str(image_folder), "--out", str(out), *TINY])
    return results, out, payload


@pytest.fixture(scope="module")
def bright_run(image_folder, tmp_path_factory):
    """A run of one class without --methods (the size's own methods), shared by the quick
    tests: (results folder, run folder, payload). Tests that resume it work on a copy."""
    results = tmp_path_factory.mktemp("bright")
    out = results / "folder-tiny"
    payload = reproduce.main(["--dataset", "folder", "--root", str(image_folder),
                              "--out", str(out), *TINY_SIZE_METHODS, "--classes", "bright"])
    return results, out, payload


def test_help_lists_sizes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--size" in text and "cpu:" in text and "full:" in text


def test_benchmark_writes_results(benchmark_run):
    _, out, payload = benchmark_run
    saved = json.loads((out / "results.json").read_text())
    assert saved["complete"] and [row["class"] for row in saved["classes"]] == ["bright", "dark"]
    assert saved["overrides"]["epochs"] == 1 and saved["config"]["epochs"] == 1
    for key in ("wall_seconds", "seed", "environment", "size"):
        assert key in saved
    assert saved["environment"]["versions"]["torch"]
    for row in saved["classes"]:
        assert row["n_train"] == 6 and row["n_test"] == 8 and row["n_test_normal"] == 4
        methods = [rec["method"] for rec in row["methods"]]
        assert methods == ["pretrained-knn", "msc", "msc-angular"]
        for rec in row["methods"]:
            assert 0.0 <= rec["roc_auc"] <= 1.0
        # The baseline really does not train; the MSC methods do.
        assert row["methods"][0]["loss_curve"] == []
        assert len(row["methods"][1]["loss_curve"]) == 1
        scores = np.load(out / "scores" / f"{row['class']}.npz")
        assert scores["y_test"].sum() == 4 and scores["msc"].shape == (8,)
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["method"] for r in rows} == set(saved["methods"])
    assert payload["mean_roc_auc"].keys() == set(saved["methods"])


def test_resume_keeps_finished_classes(benchmark_run, image_folder, capsys):
    _, out, payload = benchmark_run
    again = reproduce.main(
        ["--dataset", "folder", "--root", str(image_folder), "--out", str(out), "--resume",
         *TINY])
    assert again["classes"] == payload["classes"]
    assert "ROC-AUC" not in capsys.readouterr().out.split("\n", 1)[1].split("mean")[0]
    with pytest.raises(SystemExit, match="another configuration"):
        reproduce.main(
            ["--dataset", "folder", "--root", str(image_folder), "--out", str(out),
             "--resume", *TINY[:-6], "--learning-rate", "1e-4", *TINY[-4:]])


def test_resume_adds_classes_to_a_run_of_the_size_as_defined(bright_run, image_folder,
                                                             tmp_path):
    # Without --methods the size's own tuple of methods goes into the config; --resume
    # compares it with the JSON list read back (it refused every such run before).
    import shutil

    out = tmp_path / "run"
    shutil.copytree(bright_run[1], out)
    first = bright_run[2]
    common = ["--dataset", "folder", "--root", str(image_folder), "--out", str(out),
              *TINY_SIZE_METHODS]
    assert [row["class"] for row in first["classes"]] == ["bright"]
    again = reproduce.main([*common, "--classes", "bright", "dark", "--resume"])
    assert [row["class"] for row in again["classes"]] == ["bright", "dark"]
    assert again["classes"][0] == first["classes"][0]


def test_report_skips_other_benchmarks_results(bright_run, tmp_path):
    # deploy/, gallery/ ... also write a results.json, without a reproduce.py config.
    results, _, _ = bright_run
    other = tmp_path / "results"
    other.mkdir()
    for path in results.rglob("*"):
        if path.is_file():
            target = other / path.relative_to(results)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (other / "deploy").mkdir()
    (other / "deploy" / "results.json").write_text(json.dumps({"rows": []}))
    runs = make_report.load_runs(other)
    assert [folder.name for folder, _ in runs] == ["folder-tiny"]


def test_report_has_table_and_plots(benchmark_run, tmp_path):
    results, _, payload = benchmark_run
    report = tmp_path / "docs" / "benchmarks.md"
    figures = tmp_path / "docs" / "_static" / "benchmarks"
    text = make_report.build_report(results, report, figures)
    assert report.read_text() == text
    assert "| **mean** |" in text and "| 0 bright |" in text and "| 1 dark |" in text
    mean_row = next(line for line in text.splitlines() if line.startswith("| **mean** |"))
    for method in ("pretrained-knn", "msc", "msc-angular"):
        assert f"{100 * payload['mean_roc_auc'][method]:.2f}" in mean_row
    assert "98.6" in text and "quoted" in text  # the paper's numbers, labelled
    pngs = sorted(p.name for p in figures.glob("*.png"))
    assert "folder-tiny-per-class.png" in pngs and any("-roc-" in p for p in pngs)
    for png in figures.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert f"_static/benchmarks/{png.name}" in text


def test_report_labels_runs_by_the_size_that_has_their_settings(bright_run):
    sizes = reproduce.SIZES
    from dataclasses import asdict

    payload = {"size": "cpu", "config": asdict(sizes["cpu-short"])}
    payload["config"]["name"] = "cpu"  # a run made when cpu-short's settings were "cpu"
    assert make_report.size_label(payload) == "cpu-short"
    payload["config"]["epochs"] = 99
    assert make_report.size_label(payload) == "cpu (earlier definition)"
    _, _, tiny = bright_run
    assert make_report.size_label(tiny) == "cpu (earlier definition)"  # overridden settings


FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.skipif(not FMNIST.is_file(), reason="needs `apt-get install dataset-fashion-mnist`")
def test_learning_curves_and_their_report_section(benchmark_run, tmp_path):
    from skmsc.nn._safeguard import best_epoch

    results, _, _ = benchmark_run
    out = tmp_path / "results" / "curves" / "tiny"
    learning_curve.main(
        ["--classes", "0", "--settings", "1e-3:7", "1e-3:7:angular", "--epochs", "2",
         "--n-train", "120", "--n-test-per-class", "3", "--image-size", "32",
         "--batch-size", "16", "--out", str(out)])
    curves = json.loads((out / "curves.json").read_text())["curves"]
    assert [c["setting"] for c in curves] == ["1e-3:7", "1e-3:7:angular"]
    for curve in curves:
        assert curve["task"] == "fmnist-0-t-shirt-top" and curve["n_train"] == 120
        assert len(curve["roc_auc_by_epoch"]) == 3 and len(curve["loss_by_epoch"]) == 2
        assert len(curve["proxy_by_epoch"]) == 3  # epoch 0 and after each epoch
        proxy_scores = np.load(out / "scores" / f"{curve['task']}-"
                               f"{curve['setting'].replace(':', '-')}.npz")
        kept = best_epoch(list(zip(proxy_scores["proxy_normal"],
                                   proxy_scores["proxy_anomalous"], strict=True)))
        assert curve["chosen_epoch"] == kept
        assert curve["best_epoch"] == int(np.argmax(curve["roc_auc_by_epoch"]))
        low, high = curve["interval_best_vs_0"]
        assert low <= high
        assert all(0 <= a <= 1 for a in curve["roc_auc_by_epoch"])
        assert np.isfinite(curve["loss_by_epoch"]).all()
        scores = np.load(out / "scores" / f"{curve['task']}-{curve['setting'].replace(':', '-')}"
                         ".npz")
        assert scores["scores"].shape == (3, 30) and scores["y_test"].sum() == 3
    # Epoch 0 is the pretrained network: the same for every setting.
    assert curves[0]["roc_auc_by_epoch"][0] == curves[1]["roc_auc_by_epoch"][0]
    assert curves[0]["proxy_by_epoch"][0] == curves[1]["proxy_by_epoch"][0]

    (tmp_path / "results" / "run").symlink_to(results / "folder-tiny", target_is_directory=True)
    report = tmp_path / "docs" / "benchmarks.md"
    text = make_report.build_report(
        tmp_path / "results", report, tmp_path / "docs" / "_static")
    assert "## Learning curves and the label-free safeguard" in text
    assert "| `tiny` | fmnist-0-t-shirt-top | efficientnet_lite0, 32 px" in text
    assert "| 2 | " in text.split("The safeguard, validated")[1]  # 2 curves validated
    assert "_static/safeguard-curves.png" in text
    assert (tmp_path / "docs" / "_static" / "safeguard-curves.png").read_bytes()[:4] == b"\x89PNG"


def test_speed_gallery_adds_unit_noisy_copies_of_real_features():
    speed = speed_knn
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 8)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    gallery = speed._gallery(real, 70_000, rng, noise=0.01)  # crosses a 65,536-row block
    assert gallery.shape == (70_000, 8) and gallery.dtype == np.float32
    np.testing.assert_array_equal(gallery[:50], real)
    np.testing.assert_allclose(np.linalg.norm(gallery, axis=1), 1, atol=1e-5)
    # Every copy lies near one real vector, but is not one.
    nearest = ((gallery[50:, None, :] - real[None]) ** 2).sum(-1).min(axis=1)
    assert np.all(nearest > 0) and np.all(nearest < 0.01)
    subset = speed._gallery(real, 20, rng, noise=0.01)
    assert subset.shape == (20, 8) and all(any((r == real).all(1)) for r in subset)


def test_speed_crossover_interpolates_between_sizes():
    speed = speed_knn
    rows = [dict(n=n, degree=30, epsilon=0.5, exact=e, nnd=a)
            for n, e, a in ((10_000, 1.0, 4.0), (100_000, 10.0, 2.5))]
    # log(a/e) goes from log 4 to log 0.25 linearly in log n: zero halfway, at ~31,623.
    assert speed._crossover(rows, "exact", "nnd") == 31623
    assert speed._crossover(rows[:1], "exact", "nnd") is None


def test_speed_steps_section_times_each_step_and_what_it_replaced(tmp_path):
    import skmsc.nn._preprocess

    speed.main(["--sections", "steps", "--sizes", "24", "--batch-size", "3", "--repeats", "1",
                "--out", str(tmp_path), "--tag", "_t"])
    rows = json.loads((tmp_path / "performance_t.json").read_text())["steps"]
    assert len(rows) == 10 and all(r["ms"] > 0 and r["size"] == 24 for r in rows)
    replaced = [r["step"] for r in rows if r["replaced_ms"] is not None]
    assert len(replaced) == 3 and any("blur" in name for name in replaced)
    assert "| crops (grid_sample" in (tmp_path / "performance_tables_t.md").read_text()
    # The float-resize comparison asks for float passes; it patches nothing.
    assert skmsc.nn._preprocess.UINT8_RESIZE_DEVICES == ("cpu",)


def test_blur_with_subnormal_weights_is_the_same_blur():
    # The benchmark's "before" blur differs from the library's only by the zeroed tail.
    import torch

    from skmsc.nn.augment import _gaussian_blur

    speed = speed_steps
    images = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 0.7, 2.0])
    torch.testing.assert_close(speed._blur_keeping_subnormals(images, sigma, 23).clamp(0, 1),
                               _gaussian_blur(images, sigma, 23), atol=1e-6, rtol=0)


def test_probed_curves_on_an_image_folder_and_the_epoch_rules(tmp_path, monkeypatch):
    """learning_curve.py --probes on a folder tree, then every rule of epoch_rules.py."""
    from PIL import Image

    root = tmp_path / "photos"
    rng = np.random.default_rng(1)
    for split, n in (("train", 30), ("test", 3)):
        for name, level in (("bright", 190), ("dark", 60)):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(level, 30, size=(16, 16, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.png")
    probes = tmp_path / "probes"
    # Fewer bootstrap resamples for the intervals (200 and 500, ~1.7 ms each in
    # roc_auc_score): no assertion here reads an interval's value.
    monkeypatch.setattr(learning_curve, "BOOTSTRAP_ROUNDS", 20)
    monkeypatch.setattr(epoch_rules, "TEST_BOOTSTRAP_ROUNDS", 20)
    learning_curve.main(
        ["--dataset", "folder", "--root", str(root), "--classes", "0", "--settings", "1e-3:7",
         "--epochs", "1", "--n-test-per-class", "3", "--image-size", "32", "--batch-size", "16",
         "--out", str(tmp_path / "curves"), "--probes", str(probes)])
    folder = probes / "photos-0-bright-1e-3-7"
    epoch = np.load(folder / "epoch1.npz")
    assert sorted(p.name for p in folder.iterdir()) == ["epoch0.npz", "epoch1.npz"]
    assert epoch["features"].shape == (30, 1280) and epoch["test"].shape == (6, 1280)
    assert len(epoch["held_out"]) == 10 and epoch["y_test"].sum() == 3
    for kind in ("cut-paste", "scar", "blend", "rotate", "flip", "shuffle", "mosaic"):
        assert epoch[kind].shape == (10, 1280), kind
    out = tmp_path / "rules.json"
    rules = epoch_rules
    rules.main([str(probes), "--out", str(out)])
    table = json.loads(out.read_text())["groups"]["probes"]
    assert set(table) == set(rules.RULES)
    assert [r["chosen"] for r in table["epoch 0 (no fine-tuning)"]["curves"]] == [0]
    assert [r["chosen"] for r in table["last epoch (no safeguard)"]["curves"]] == [1]
    for row in table.values():
        assert row["n"] == 1 and 0 <= row["curves"][0]["chosen"] <= 1


def test_report_compares_the_kept_epoch_with_the_same_seed_curve(tmp_path):
    config = {"backbone": "efficientnet_lite0", "image_size": 224, "learning_rate": 3e-4,
              "epochs": 2, "batch_size": 32, "early_stopping": True}
    run = {"dataset": "folder", "seed": 0, "methods": ["pretrained-knn", "msc"],
           "config": config, "command": "x --root /data/cifar10",
           "classes": [{"class_index": c, "class": name, "n_train": 100, "methods": [
               {"method": "pretrained-knn", "roc_auc": 0.8},
               {"method": "msc", "roc_auc": auc, "kept_epoch": kept}]}
               for c, name, auc, kept in ((0, "plane", 0.9, 2), (1, "car", 0.8, 0))]}
    curves = {"args": {**config, "dataset": "folder", "seed": 0, "n_train": 100},
              "curves": [{"task": "cifar10-0-plane", "setting": "3e-4:auto", "n_train": 100,
                          "roc_auc_by_epoch": [0.8, 0.85, 0.9]},
                         {"task": "cifar10-1-car", "setting": "3e-4:auto", "n_train": 100,
                          "roc_auc_by_epoch": [0.8, 0.9, 0.82]},
                         {"task": "cifar10-1-car", "setting": "1e-4:auto", "n_train": 100,
                          "roc_auc_by_epoch": [0.8, 0.99, 0.99]}]}
    text = "\n".join(make_report.kept_epochs_section([(tmp_path / "dev", run)],
                                                     [(tmp_path / "c", curves)]))
    assert "| `dev` | 0 plane | 80.00 | 2 | 90.00 | 90.00 | 2 | 90.00 |" in text
    assert "| `dev` | 1 car | 80.00 | 0 | 80.00 | 80.00 | 1 | 90.00 |" in text  # not lr 1e-4
    assert "`dev` +10.00 of +20.00 points (50 %)" in text
    assert make_report.dataset_title(run) == "CIFAR-10 (JPEG image folders)"
