"""The command line never destroys input: output targets, --overwrite, atomic CSV, escaping.

Issue #16, items 3 and 4, and the ``--workers`` usage error of item 13.
"""

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST

from skmsc import MeanShiftedContrastiveDetector
from skmsc.cli import main


@pytest.fixture(scope="module")
def model(image_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-out") / "model"
    MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(image_folder.normal[:8]).save(folder)
    return folder


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def rows(data: bytes) -> list[list[str]]:
    table = list(csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"))))
    assert table[0] == ["path", "score", "decision", "label"]
    return table[1:]


def test_csv_over_the_model_it_reads_is_refused(model, image_folder, capsys):
    """The issue's reproduction: --csv model/detector.json overwrote the model (exit 0)."""
    before = snapshot(model)
    for target in (model / "detector.json", model / "scores.csv", model):
        for extra in ([], ["--overwrite"]):
            code, out, err = run(capsys, "score", model, image_folder.test[0], "--csv",
                                 target, *extra)
            assert code == 2 and out == "", (target, extra)
            assert "--csv" in err and len(err.strip().splitlines()) == 1
    assert snapshot(model) == before


def test_csv_over_an_existing_file_needs_overwrite(model, image_folder, tmp_path, capsys):
    image = tmp_path / "some.png"
    shutil.copy(image_folder.test[1], image)
    code, _, err = run(capsys, "score", model, image_folder.test[0], "--csv", image)
    assert code == 2 and "--overwrite" in err
    assert image.read_bytes() == Path(image_folder.test[1]).read_bytes()
    code, _, err = run(capsys, "score", model, image_folder.test[0], "--csv", image,
                       "--overwrite")
    assert code == 0, err
    assert [r[0] for r in rows(image.read_bytes())] == [image_folder.test[0]]


def test_csv_never_replaces_an_input_image(model, image_folder, tmp_path, capsys):
    image = tmp_path / "input.png"
    shutil.copy(image_folder.test[2], image)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(capsys, "score", model, image, "--csv", image, *extra)
        assert code == 2 and "images to score" in err
    assert image.read_bytes() == Path(image_folder.test[2]).read_bytes()


def test_csv_inside_an_input_folder_needs_overwrite(model, image_folder, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for path in image_folder.test[:3]:
        shutil.copy(path, folder)
    code, _, err = run(capsys, "score", model, folder, "--csv", folder / "scores.csv")
    assert code == 2 and "input folder" in err and not (folder / "scores.csv").exists()
    code, _, err = run(capsys, "score", model, folder, "--csv", folder / "scores.csv",
                       "--overwrite", "-q")
    assert code == 0, err
    assert len(rows((folder / "scores.csv").read_bytes())) == 3


def test_fit_outputs_are_checked_before_fitting(image_folder, tmp_path, capsys, model):
    normal = image_folder.root / "normal"
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me too")
    before = snapshot(model)
    for target, message in [(a_file, "is a file"), (other, "did not write"),
                            (model, "--overwrite"), (normal / "model", "input folder")]:
        code, out, err = run(capsys, "fit", normal, "-o", target, "--epochs", "0", "-q")
        assert code == 2 and message in err, (target, err)
        assert "fitting on" not in err  # refused before any work
    assert a_file.read_text() == "keep me" and (other / "notes.txt").exists()
    assert snapshot(model) == before and not (normal / "model").exists()


def test_fit_with_overwrite_replaces_a_model_whole(image_folder, tmp_path, capsys):
    normal = image_folder.root / "normal"
    model = tmp_path / "model"
    flags = ["--backbone", "efficientnet_lite0", "--image-size", "32", "--batch-size", "8",
             "--epochs", "0", "-q"]
    assert run(capsys, "fit", normal, "-o", model, *flags)[0] == 0
    first = MeanShiftedContrastiveDetector.load(model)
    code, _, err = run(capsys, "fit", normal, "-o", model, *flags, "--n-neighbors", "3",
                       "--overwrite")
    assert code == 0, err
    second = MeanShiftedContrastiveDetector.load(model)
    assert (first.n_neighbors, second.n_neighbors) == (2, 3)
    assert sorted(p.name for p in model.parent.iterdir()) == ["model"]  # nothing left over


def test_a_failure_while_writing_the_csv_leaves_the_old_file(model, image_folder, tmp_path,
                                                             capsys, monkeypatch):
    import skmsc.cli

    out = tmp_path / "scores.csv"
    out.write_text("old results\n")

    def half_then_fail(path, write):
        class Failing(io.BytesIO):
            def write(self, data):
                super().write(data[: len(data) // 2])
                raise OSError(28, "No space left on device")

        real(path, lambda file: write(Failing()) or write(file))

    real = skmsc.cli.write_file_atomically
    monkeypatch.setattr(skmsc.cli, "write_file_atomically", half_then_fail)
    code, _, err = run(capsys, "score", model, *image_folder.test[:4], "--csv", out,
                       "--overwrite")
    assert code == 1 and "No space left" in err
    assert out.read_text() == "old results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # no temp file


def test_file_names_that_are_not_utf8_are_written_whole(model, image_folder, tmp_path, capsys):
    """The issue: a non-UTF-8 name after 4 of 8 rows left a half-written CSV."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    names = [f"{i}.png" for i in range(8)]
    names[4] = os.fsdecode(b"4-\xff\xfe.png")  # not UTF-8: a surrogate-escaped str
    for name, source in zip(names, image_folder.test, strict=False):
        shutil.copy(source, folder / name)
    out = tmp_path / "scores.csv"
    code, _, err = run(capsys, "score", model, folder, "--csv", out, "-q")
    assert code == 0, err
    written = rows(out.read_bytes())
    assert sorted(r[0] for r in written) == sorted(str(folder / n) for n in names)
    assert os.fsencode(str(folder / names[4])) in out.read_bytes()  # the name's own bytes


FORMULA_NAMES = ["=HYPERLINK(\"evil.example\",\"x\").png", "+1+2.png", "-3.png", "@SUM(A1).png",
                 "\tTAB.png", "\rCR.png", "'quoted.png", "plain.png"]


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(model, image_folder, tmp_path,
                                                            capsys, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, source in zip(FORMULA_NAMES, image_folder.test, strict=False):
        shutil.copy(source, folder / name)
    paths = [str(folder / n) for n in FORMULA_NAMES]
    out = tmp_path / "scores.csv"
    monkeypatch.chdir(folder)  # relative paths: the cell starts with the file name itself
    code, _, err = run(capsys, "score", "--csv", out, "-q", "--", model, *FORMULA_NAMES)
    assert code == 0, err
    cells = [r[0] for r in rows(out.read_bytes())]
    for name, cell in zip(FORMULA_NAMES, cells, strict=True):
        escape = name != "plain.png"
        assert cell == ("'" + name if escape else name)
        assert cell[1:] == name if cell.startswith("'") else cell == name  # reversible
    scores = [float(r[1]) for r in rows(out.read_bytes())]
    assert np.all(np.isfinite(scores)) and len(paths) == len(scores)


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_negative_workers_is_a_usage_error_naming_the_flag(model, image_folder, capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["score", str(model), image_folder.test[0], "--workers", value])
    assert info.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_no_images_after_the_ext_filter_names_the_filter_and_what_was_found(
        image_folder, tmp_path, capsys):
    """Issue #25 item 8: fit --ext jpg on a PNG folder says why nothing was found."""
    folder = image_folder.root / "normal"  # 24 PNG files
    code, _, err = run(capsys, "fit", folder, "-o", tmp_path / "m", "--ext", "jpg")
    assert code == 2
    assert "--ext jpg" in err and "found 24 .png file(s)" in err and "leave --ext out" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "fit", empty, "-o", tmp_path / "m", "--ext", "jpg")
    assert code == 2 and "nor any other image files" in err
    assert not (tmp_path / "m").exists()
