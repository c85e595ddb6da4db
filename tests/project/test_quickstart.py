"""Issue #25 item 9: ``make quickstart`` says what it installs and explains its output."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from skmsc import KNNDetector

ROOT = Path(__file__).resolve().parents[2]


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_explains_what_it_flagged():
    quickstart = _module(ROOT / "examples" / "quickstart.py")
    det = KNNDetector(contamination=0.05).fit(np.random.default_rng(0).normal(size=(50, 2)))
    decision = np.array([-1.0, -2.0, 0.5, 1.0, -0.1, 2.0])
    y_test = np.array([1, 0, 1, 0, 0, 0])  # 1 = the normal class
    text = quickstart.flagged_summary(decision, y_test, det)
    assert "3 of 6 test images (50.0%)" in text
    assert "2 of the 4 images of other classes (anomalies caught, 50.0%)" in text
    assert "1 of the 2 images of the normal class (false alarms, 50.0%)" in text
    assert "contamination=0.05" in text and "flags 5% of new normal images" in text
    assert "not the expected share of anomalies" in text


def test_quickstart_installs_no_chromium_and_test_does():
    setup = (ROOT / ".ci" / "setup").read_text()
    assert "apt-get install -y -q chromium" not in setup  # quickstart runs .ci/setup
    dry = subprocess.run(["make", "-n", "-B", "quickstart"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert ".ci/chromium" not in dry and ".ci/setup" in dry
    dry = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert ".ci/chromium" in dry


def test_setup_says_how_large_torch_is_and_why_before_installing(tmp_path):
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        import torch_download
    finally:
        sys.path.remove(str(ROOT / ".ci"))
    wheels = {}
    for name, size in [("torch", 600_000_000), ("nvidia-cublas", 400_000_000),
                       ("triton", 200_000_000)]:
        wheels[name] = tmp_path / f"{name}.whl"
        with open(wheels[name], "wb") as f:
            f.truncate(size)  # sparse: the size without the disk space
    report = {"install": [{"metadata": {"name": name},
                           "download_info": {"url": path.as_uri()}}
                          for name, path in wheels.items()]}
    text = torch_download.describe(json.loads(json.dumps(report)), ["torch==2.14.1"])
    assert "setup: installing torch==2.14.1: 3 packages, 1.2 GB of wheels" in text
    assert "0.6 GB of it is GPU libraries" in text and "CUDA build" in text
    assert "CPU build" in text  # and how to avoid it
    setup = (ROOT / ".ci" / "setup").read_text()
    assert setup.index("torch_download.py") < setup.index("pip install -q $TORCH")
