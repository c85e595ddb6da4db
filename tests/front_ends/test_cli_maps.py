"""`skmsc score ... --maps DIR`: an overlay PNG for every flagged image, and nothing else."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skmsc.cli import EXIT_OK, EXIT_USAGE, main

FIT_FLAGS = ["--backbone", "efficientnet_lite0", "--epochs", "0", "--batch-size", "8",
             "--image-size", "64", "--random-state", "0", "-q"]


@pytest.fixture(scope="module")
def model(image_folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("maps-cli") / "model"
    assert main(["fit", str(image_folder.root / "normal"), "-o", str(path), *FIT_FLAGS]) == 0
    return path


def _flagged(csv_path: Path) -> list[str]:
    with open(csv_path, newline="") as f:
        return [row["path"] for row in csv.DictReader(f) if row["label"] == "anomaly"]


@pytest.mark.parametrize("method", [None, "occlusion"])
def test_one_png_per_flagged_image(model, image_folder, tmp_path, method):
    maps, scores = tmp_path / "maps", tmp_path / "scores.csv"
    extra = [] if method is None else ["--map-method", method]
    code = main(["score", str(model), str(image_folder.root / "test"), "--csv", str(scores),
                 "--maps", str(maps), "--normal", str(image_folder.root / "normal"), "-q",
                 *extra])
    assert code == EXIT_OK
    flagged = _flagged(scores)
    assert 0 < len(flagged) < 16  # the zeros among the test digits pass
    assert sorted(p.name for p in maps.iterdir()) == sorted(Path(p).name + ".png"
                                                            for p in flagged)
    with Image.open(maps / (Path(flagged[0]).name + ".png")) as png:
        width, height = png.size
        assert width > 2.5 * height > 250  # one row: image, map, nearest normal
        assert np.asarray(png.convert("L")).std() > 10  # not a blank canvas


def test_without_normal_the_neighbour_column_is_left_out(model, image_folder, tmp_path):
    maps = tmp_path / "maps"
    bad = image_folder.test[-1]  # a digit 7: far from the zeros
    assert main(["score", str(model), bad, "--maps", str(maps), "-q"]) == EXIT_OK
    (png,) = maps.iterdir()
    with Image.open(png) as image:
        width, height = image.size
        assert 1.5 * height < width < 2.5 * height


def test_map_options_are_checked_before_scoring(model, image_folder, tmp_path, capsys):
    test = str(image_folder.root / "test")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert main(["score", str(model), test, "--maps", str(busy)]) == EXIT_USAGE
    assert "not an empty folder" in capsys.readouterr().err
    assert (busy / "keep.txt").read_text() == "mine"
    assert main(["score", str(model), test, "--maps", str(model / "maps")]) == EXIT_USAGE
    assert "inside the model folder" in capsys.readouterr().err
    assert main(["score", str(model), test, "--maps", test + "/maps"]) == EXIT_USAGE
    assert "inside an input folder" in capsys.readouterr().err
    assert not Path(test, "maps").exists()
    assert main(["score", str(model), test, "--normal", test]) == EXIT_USAGE
    assert "go with --maps" in capsys.readouterr().err
    code = main(["score", str(model), test, "-q", "--maps", str(tmp_path / "m"),
                 "--normal", test])  # 16 test images, but the model knows 24 normals
    assert code == EXIT_USAGE
    assert "fitted on 24" in capsys.readouterr().err
    csv_path = tmp_path / "never.csv"
    code = main(["score", str(model), test, "-q", "--csv", str(csv_path), "--maps",
                 str(tmp_path / "m2"), "--normal", test])
    assert code == EXIT_USAGE and not csv_path.exists()  # refused before scoring


def test_repeated_file_names_get_distinct_pngs(model, image_folder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    bad = Image.open(image_folder.test[-1])
    bad.save(a / "x.png")
    bad.save(b / "x.png")
    maps = tmp_path / "maps"
    assert main(["score", str(model), str(a), str(b), "--maps", str(maps), "-q"]) == EXIT_OK
    # The folders they came from, mirrored: no renaming, no clash.
    assert sorted(p.relative_to(maps).as_posix() for p in maps.rglob("*.png")) == [
        "a/x.png.png", "b/x.png.png"]


def test_maps_mirror_the_input_tree_and_the_csv_names_each_map(model, image_folder,
                                                                  tmp_path):
    """Issue #25 item 8: sub/021_2.jpg's map is sub/021_2.jpg.png, named in the CSV."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    seven = Image.open(image_folder.test[-1]).convert("RGB")  # a 7: far from the zeros
    seven.save(images / "sub" / "021_2.jpg", quality=95)
    seven.save(images / "021_2.png")
    Image.open(image_folder.normal[0]).save(images / "zero.png")  # a normal image
    maps, scores = tmp_path / "maps", tmp_path / "scores.csv"
    assert main(["score", str(model), str(images), "--csv", str(scores), "--maps", str(maps),
                 "-q"]) == EXIT_OK
    with open(scores, newline="") as f:
        table = {Path(row["path"]).relative_to(images).as_posix(): row
                 for row in csv.DictReader(f)}
    assert table["sub/021_2.jpg"]["map"] == str(maps / "sub" / "021_2.jpg.png")
    assert table["021_2.png"]["map"] == str(maps / "021_2.png.png")
    written = sorted(p.relative_to(maps).as_posix() for p in maps.rglob("*.png"))
    assert written == sorted(Path(row["map"]).relative_to(maps).as_posix()
                             for row in table.values() if row["label"] == "anomaly")
    assert all(row["map"] == "" for row in table.values() if row["label"] == "normal")


def test_map_method_choices_are_the_detectors():
    # The CLI lists the names without importing torch; they must stay the detector's.
    from skmsc.cli import _parser
    from skmsc.nn._explain import MAP_METHODS

    score = _parser()._subparsers._group_actions[0].choices["score"]
    (action,) = [a for a in score._actions if a.dest == "map_method"]
    assert sorted(action.choices) == sorted(MAP_METHODS)
