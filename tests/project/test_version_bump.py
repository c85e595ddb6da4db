"""Item: the package version moves with the save format (format 2 is skmsc 0.2.0), and a
format mismatch names the saved format and skmsc version and the running ones."""

import configparser
import json
import re
from pathlib import Path

import numpy as np
import pytest

import skmsc
from skmsc import KNNDetector
from skmsc.persistence import FORMAT_VERSION, JSON_NAME, load

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_0_2_0_wherever_it_is_declared():
    assert skmsc.__version__ == "0.2.0"
    assert FORMAT_VERSION == 2
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    # setup.cfg reads it from skmsc/_version.py; pyproject.toml must not declare another.
    assert setup["metadata"]["version"] == "attr: skmsc._version.__version__"
    assert not re.search(r"^version\s*=", (ROOT / "pyproject.toml").read_text(), re.M)


def test_a_save_records_the_running_skmsc_version(tmp_path):
    det = KNNDetector().fit(np.random.default_rng(0).normal(size=(20, 3)))
    document = json.loads((det.save(tmp_path / "m") / JSON_NAME).read_text())
    assert document["skmsc_version"] == "0.2.0" and document["format_version"] == 2


def test_format_mismatch_names_both_formats_and_both_versions(tmp_path):
    det = KNNDetector().fit(np.random.default_rng(0).normal(size=(20, 3)))
    folder = det.save(tmp_path / "m")
    document = json.loads((folder / JSON_NAME).read_text())
    document["format_version"], document["skmsc_version"] = 3, "0.3.1"
    (folder / JSON_NAME).write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"saved by skmsc 0\.3\.1 in format version 3; "
                       r"this skmsc 0\.2\.0 writes format version 2 and reads versions "
                       r"\[1, 2\]\. Load it with skmsc 0\.3\.1"):
        load(folder)
    del document["skmsc_version"]
    (folder / JSON_NAME).write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"saved by an unknown skmsc version in format "
                       r"version 3; this skmsc 0\.2\.0"):
        load(folder)


def test_onnx_format_mismatch_names_both_versions():
    from skmsc.onnx._runtime import FORMAT, _parse_metadata

    text = json.dumps({"format": FORMAT, "format_version": 7,
                       "versions": {"skmsc": "0.9.0"}})
    with pytest.raises(ValueError, match=r"exported by skmsc 0\.9\.0 in format version 7; "
                       r"this skmsc 0\.2\.0 reads format version 1"):
        _parse_metadata(text, Path("model.onnx"))
