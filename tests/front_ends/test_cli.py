"""The skmsc command line, run as a separate process (`python -m skmsc`)."""

import configparser
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST

from skmsc import MeanShiftedContrastiveDetector
from skmsc.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIT_FLAGS = [
    "--backbone", "efficientnet_lite0", "--epochs", "1", "--batch-size", "8",
    "--image-size", "32", "--random-state", "0",
]  # fmt: skip
FIT_PARAMS = dict(FAST, epochs=1)


def skmsc(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "skmsc", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
    )


def read_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["path", "score", "decision", "label"]
    return rows[1:]


@pytest.fixture(scope="module")
def cli_model(image_folder, tmp_path_factory):
    model = tmp_path_factory.mktemp("cli") / "model"
    done = skmsc("fit", image_folder.root / "normal", "-o", model, *FIT_FLAGS)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # messages and progress bars go to stderr
    assert "fitting on 24 images" in done.stderr
    return model


def test_fit_and_score_match_the_python_api_and_the_array(cli_model, image_folder, tmp_path):
    out = tmp_path / "scores.csv"
    files = image_folder.test + list(image_folder.other.values())
    done = skmsc("score", cli_model, *files, "--csv", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    rows = read_csv(out.read_text())
    assert [r[0] for r in rows] == files  # input order by default
    cli_scores = np.array([float(r[1]) for r in rows])

    # The CLI's model is the API's model fitted on the same folder listing.
    api = MeanShiftedContrastiveDetector(**FIT_PARAMS).fit(image_folder.normal)
    np.testing.assert_array_equal(cli_scores, api.score_samples(files))
    loaded = MeanShiftedContrastiveDetector.load(cli_model)
    np.testing.assert_array_equal(cli_scores, loaded.score_samples(files))
    # ... and the PNG digits score as the same pixels given as an array.
    array_scores = loaded.score_samples(image_folder.test_array)
    np.testing.assert_allclose(cli_scores[: len(image_folder.test)], array_scores, rtol=1e-6)
    decisions = np.array([float(r[2]) for r in rows])
    np.testing.assert_array_equal(decisions, cli_scores - loaded.offset_)
    labels = [r[3] for r in rows]
    assert labels == ["anomaly" if d < 0 else "normal" for d in decisions]


def run_main(capsys, *args):
    """The CLI in this process (cheaper than a subprocess): (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_score_folder_to_stdout_sorted(cli_model, image_folder, capsys):
    code, out, err = run_main(
        capsys, "score", cli_model, image_folder.root / "test", "--sort", "score", "-q"
    )
    assert code == 0, err
    rows = read_csv(out)
    assert sorted(r[0] for r in rows) == sorted(image_folder.test)
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores)  # most anomalous first
    assert "scored 16 images" in err and "it/s" not in err  # -q: no progress bars
    code, out, _ = run_main(capsys, "score", cli_model, *image_folder.test[::-1], "--sort", "path")
    assert code == 0 and [r[0] for r in read_csv(out)] == sorted(image_folder.test)


def test_unreadable_file_fails_with_1_naming_it(cli_model, image_folder, capsys):
    args = ["score", cli_model, *image_folder.test[:3], image_folder.garbage]
    code, out, err = run_main(capsys, *args)
    assert code == 1 and out == ""
    (line,) = err.strip().splitlines()[-1:]
    assert line.startswith("skmsc score: error:") and image_folder.garbage in line
    # The process exit code: files are checked before torch loads, so this one is quick.
    done = skmsc("score", cli_model, image_folder.garbage, "--skip-unreadable")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == "skmsc score: error: no readable images left"


def test_unreadable_files_skipped_on_request_and_reported(cli_model, image_folder, capsys):
    bad = [image_folder.garbage, image_folder.truncated]
    code, out, err = run_main(
        capsys, "score", cli_model, *image_folder.test[:3], *bad, "--skip-unreadable", "-q"
    )
    assert code == 0, err
    assert [r[0] for r in read_csv(out)] == image_folder.test[:3]
    assert all(path in err for path in bad)
    assert "skipped 2 unreadable of 5 images" in err
    code, out, err = run_main(capsys, "score", cli_model, *bad, "--skip-unreadable", "-q")
    assert code == 1 and out == "" and "no readable images" in err


def test_usage_errors_exit_with_2(image_folder, tmp_path, capsys):
    done = skmsc("fit", tmp_path / "missing", "-o", tmp_path / "m")
    assert done.returncode == 2 and "not a folder" in done.stderr
    for args, message in [
        (["fit", image_folder.root / "normal", "-o", tmp_path / "m", "--epochs", "-1"],
         "epochs"),
        (["fit", image_folder.root / "normal", "-o", tmp_path / "m", "--ext", "gif"],
         "no image files"),
        (["score", tmp_path / "no_model", image_folder.test[0]], "no such model"),
        (["score", image_folder.garbage, tmp_path / "nothing.png"], "no such file"),
    ]:
        code, _, err = run_main(capsys, *args)
        assert code == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
    for args in (["frobnicate"], ["fit", image_folder.root / "normal"]):  # argparse
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in args])
        assert info.value.code == 2


def test_other_failures_exit_with_1(image_folder, tmp_path, capsys):
    not_a_model = tmp_path / "junk"
    not_a_model.mkdir()
    (not_a_model / "detector.json").write_text('{"not": "a detector"}')
    code, _, err = run_main(capsys, "score", not_a_model, image_folder.test[0])
    assert code == 1 and "not a saved skmsc detector" in err


def test_help_on_every_subcommand(capsys):
    for command in ([], ["fit"], ["score"], ["info"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--help"])
        assert info.value.code == 0
        assert "usage: skmsc" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["fit", "dir", "-o", "m", "--epochs", "many"])
    assert info.value.code == 2


def test_info_and_fit_parameters_reach_the_estimator(cli_model, capsys):
    assert main(["info", str(cli_model)]) == 0
    out = capsys.readouterr().out
    assert "backbone: efficientnet_lite0" in out and "n_samples_fit: 24" in out
    params = MeanShiftedContrastiveDetector.load(cli_model).get_params()
    assert {k: params[k] for k in FIT_PARAMS} == FIT_PARAMS


def test_console_script_is_declared_and_the_cli_imports_without_torch():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = config["options.entry_points"]["console_scripts"].split("\n")
    assert "skmsc = skmsc.cli:main" in [s.strip() for s in scripts]
    # The CLI sets OMP_WAIT_POLICY before torch loads, so importing it must not load torch.
    probe = "import sys, skmsc.cli; print('torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", probe + "; import os; print(os.environ['OMP_WAIT_POLICY'])"],
        capture_output=True, text=True, env={**env, "PYTHONPATH": str(ROOT)}, timeout=120,
    )
    assert done.stdout.split() == ["False", "PASSIVE"], done.stderr


def test_fit_skips_unreadable_training_files_only_on_request(image_folder, tmp_path, capsys):
    import shutil

    folder = tmp_path / "normal"
    folder.mkdir()
    for path in image_folder.normal[:6] + [image_folder.garbage]:
        shutil.copy(path, folder)
    model = tmp_path / "model"
    args = ["fit", folder, "-o", model, *FIT_FLAGS, "--epochs", "0", "-q"]
    code, out, err = run_main(capsys, *args)
    assert code == 1 and "not_an_image.png" in err and not model.exists()
    code, out, err = run_main(capsys, *args, "--skip-unreadable")
    assert code == 0, err
    assert "skipped 1 unreadable of 7 images" in err and out == ""
    assert len(MeanShiftedContrastiveDetector.load(model).train_features_) == 6
