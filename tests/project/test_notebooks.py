"""The example notebooks run from top to bottom (so they cannot silently rot)."""

import os
import time
from pathlib import Path

import pytest

from skmsc.datasets import DEFAULT_FASHION_MNIST_DIR

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "anomaly_detection_walkthrough.ipynb"


def _has_fashion_mnist():
    folder = Path(os.environ.get("SKMSC_FASHION_MNIST_DIR") or DEFAULT_FASHION_MNIST_DIR)
    return (folder / "train-images-idx3-ubyte.gz").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not _has_fashion_mnist(), reason="needs Debian's dataset-fashion-mnist")
def test_walkthrough_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        "commit the notebook with outputs cleared"
    )
    # The kernel imports this checkout's skmsc, whatever is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )}
    env.pop("MPLBACKEND", None)  # the kernel's inline backend puts figures in the outputs
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute(env=env)
    print(f"notebook executed in {time.perf_counter() - start:.1f} s")
    nbformat.write(nb, tmp_path / NOTEBOOK.name)  # kept by pytest for inspection
    outputs = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert "ROC-AUC" in outputs
    images = sum("image/png" in out.get("data", {}) for cell in nb.cells
                 if cell.cell_type == "code" for out in cell.outputs)
    assert images == 3  # histogram + ROC, flagged images, false alarms
