"""Item: ``contamination`` means one thing everywhere (the fraction of new normal samples
flagged), and an average precision with normal as the positive class says so beside its
number."""

import inspect
import json
import re
from pathlib import Path

import pytest
from numpydoc.docscrape import ClassDoc

from skmsc import KNNDetector, MeanShiftedContrastiveDetector
from skmsc.cli import FIT_HELP

ROOT = Path(__file__).resolve().parents[2]
WRONG = re.compile(r"expected (fraction of anomalies|anomaly fraction)", re.IGNORECASE)


@pytest.mark.parametrize("cls", [MeanShiftedContrastiveDetector, KNNDetector])
def test_contamination_docstring_says_false_alarm_rate_on_normals(cls):
    (param,) = [p for p in ClassDoc(cls)["Parameters"] if p.name == "contamination"]
    text = " ".join(param.desc)
    assert not WRONG.search(text)
    assert "new *normal*" in text and "set_threshold" in text


def test_contamination_help_and_docs_agree():
    help_text = FIT_HELP["contamination"]
    assert "new normal images" in help_text and not WRONG.search(help_text)
    for path in [ROOT / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.rst"))]:
        assert not WRONG.search(path.read_text()), path
    assert "false-alarm rate" in (ROOT / "docs" / "guide" / "thresholds.rst").read_text()
    assert not WRONG.search(inspect.getsource(__import__("skmsc.cli").cli))


def test_average_precision_is_reported_with_its_positive_class():
    notebook = json.loads((ROOT / "examples" / "anomaly_detection_walkthrough.ipynb")
                          .read_text())
    code = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    printed = re.findall(r"f?\"([^\"\n]*average precision[^\"\n]*)\"", code)
    assert printed and all("(normal = positive)" in text for text in printed), printed
    guide = (ROOT / "docs" / "guide" / "model_selection.rst").read_text()
    outputs = [line for line in guide.splitlines() if "average precision" in line
               and not line.lstrip().startswith((">>>", "..."))
               and re.search(r"\d\.\d{3}", line)]
    assert outputs and all("(normal = positive)" in line for line in outputs), outputs
