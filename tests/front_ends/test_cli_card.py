"""Item: the command line shows its defaults, takes --precision/--verbose, moves the
threshold at scoring time, prints a model card, and hints at --skip-unreadable only for
unreadable images."""

import csv
import io
import re
from datetime import datetime

import numpy as np
import pytest

from skmsc import KNNDetector, MeanShiftedContrastiveDetector
from skmsc.cli import fit_parameters, main

FLAGS = ["--backbone", "efficientnet_lite0", "--epochs", "1", "--batch-size", "8",
         "--image-size", "32", "--random-state", "0", "--precision", "float32", "-q"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model(image_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("card") / "model"
    assert main([str(a) for a in ["fit", image_folder.root / "normal", "-o", folder,
                                  *FLAGS]]) == 0
    return folder


def test_help_shows_the_estimators_defaults(capsys):
    params = MeanShiftedContrastiveDetector().get_params()
    offered = {name: default for name, default, _ in fit_parameters()}
    assert offered == {name: value for name, value in params.items() if name != "verbose"}
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--backbone", "resnet152"), ("--epochs", "20"),
                          ("--image-size", "224"), ("--precision", "auto"),
                          ("--contamination", "auto"), ("--learning-rate", "1e-05")]:
        assert re.search(rf"{flag} \S+ .*?\(default: {re.escape(default)}\)", text), flag
    assert "--verbose" in text and "--evaluate" in text
    for flag in ("--early-stopping", "--validation-fraction", "--n-iter-no-change",
                 "--angular"):
        assert flag in text, flag
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--contamination FRACTION" in text and "--threshold SCORE" in text


def test_fit_takes_precision_and_verbose_prints_the_card(image_folder, tmp_path, capsys):
    code, out, err = run(capsys, "fit", image_folder.root / "normal", "-o", tmp_path / "m",
                         *FLAGS[:-3], "--epochs", "0", "--precision", "bfloat16", "-v", "-q")
    assert code == 0, err
    loaded = MeanShiftedContrastiveDetector.load(tmp_path / "m")
    assert loaded.precision == "bfloat16"
    assert "precision: fine_tuning" in err and "training_source: 24 image files under" in err
    assert out == ""


def test_info_prints_the_model_card(model, image_folder, capsys):
    code, out, err = run(capsys, "info", model)
    assert code == 0, err
    card = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert card["training_source"] == f"24 image files under {image_folder.root / 'normal'}"
    assert card["n_samples_fit"] == "24"
    assert datetime.fromisoformat(card["fit_started"]).tzinfo is not None
    assert card["fit_seconds"].endswith(" s")
    assert card["precision"] == "fine_tuning float32, features float32"
    assert re.fullmatch(r"\d\.\d{4}", card["loss_curve"])  # one epoch
    assert card["epochs"] == card["epochs_run"] == "1"
    assert card["best_epoch"].endswith("(0 = the pretrained network)")
    assert "torch" in card["versions"] and card["class"] == "MeanShiftedContrastiveDetector"
    assert card["contamination"] == "auto"
    assert card["contamination_fraction"] == "0.01 (of new normal images flagged)"
    n_patches, width = MeanShiftedContrastiveDetector.load(model).reference_patches_.shape
    assert card["reference_patches"] == (f"{n_patches} normal patches of {width} channels "
                                         "(for method='patch' maps)")
    # One place for the card's fields: the command prints model_card(), key by key.
    detector = MeanShiftedContrastiveDetector.load(model)
    assert list(card) == ["model", *detector.model_card()]
    assert float(card["offset"]) == detector.model_card()["offset"]


def test_info_shows_the_weights(model, tmp_path, capsys):
    """Issue #25 item 8: a random-weights model must not look like an ImageNet one."""
    code, out, err = run(capsys, "info", model)
    assert code == 0, err
    card = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert card["weights"].startswith("imagenet")
    X = np.random.default_rng(0).integers(0, 256, size=(6, 16, 16), dtype=np.uint8)
    MeanShiftedContrastiveDetector("efficientnet_lite0", weights=None, epochs=0,
                                   image_size=32, random_state=0).fit(X).save(tmp_path / "r")
    code, out, err = run(capsys, "info", tmp_path / "r")
    assert code == 0, err
    card = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert card["weights"].startswith("random: random initialisation")
    assert "not pretrained" in card["weights"]


def test_info_on_a_knn_detector(tmp_path, capsys):
    KNNDetector().fit(np.random.default_rng(0).normal(size=(20, 3))).save(tmp_path / "k")
    code, out, err = run(capsys, "info", tmp_path / "k")
    assert code == 0, err
    assert "class: KNNDetector" in out
    assert "training_source: feature vectors of shape (20, 3)" in out


def _scores(text):
    rows = list(csv.reader(io.StringIO(text)))[1:]
    return (np.array([float(r[1]) for r in rows]), np.array([float(r[2]) for r in rows]),
            [r[3] for r in rows])


def test_score_moves_the_threshold_on_request(model, image_folder, capsys):
    files = image_folder.test
    code, out, _ = run(capsys, "score", model, *files, "-q")
    scores, decisions, _ = _scores(out)
    detector = MeanShiftedContrastiveDetector.load(model)
    np.testing.assert_array_equal(decisions, scores - detector.offset_)

    code, out, err = run(capsys, "score", model, *files, "--contamination", "0.3", "-q")
    assert code == 0, err
    moved = detector.set_threshold(0.3).offset_
    _, decisions, labels = _scores(out)
    np.testing.assert_array_equal(decisions, scores - moved)
    assert labels == ["anomaly" if d < 0 else "normal" for d in decisions]

    cut = float(np.median(scores))
    code, out, err = run(capsys, "score", model, *files, "--threshold", cut, "-q")
    _, decisions, labels = _scores(out)
    np.testing.assert_array_equal(decisions, scores - cut)
    assert labels.count("anomaly") == int(np.sum(scores < cut))

    for bad in ("0.9", "many"):
        code, _, err = run(capsys, "score", model, *files, "--contamination", bad, "-q")
        assert code == 2 and "--contamination" in err, err
    with pytest.raises(SystemExit) as exit_info:  # argparse: one or the other
        main(["score", str(model), *files, "--contamination", "0.1", "--threshold", "0"])
    assert exit_info.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_skip_unreadable_hint_only_for_images(model, image_folder, tmp_path, capsys):
    code, _, err = run(capsys, "score", model, image_folder.test[0], "--csv",
                       tmp_path / "no" / "such" / "folder" / "out.csv", "-q")
    # A CSV target in a missing folder is checked before any work (issue #16): exit 2.
    assert code == 2 and "--skip-unreadable" not in err
    code, _, err = run(capsys, "score", model, image_folder.garbage, "-q")
    assert code == 1 and "(--skip-unreadable leaves such files out)" in err


def test_urls_are_a_usage_error(model, capsys):
    code, _, err = run(capsys, "score", model, "https://example.com/a.png")
    assert code == 2 and "URLs are not fetched" in err
