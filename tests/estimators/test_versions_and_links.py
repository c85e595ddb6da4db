"""Saved models: identical scores after a round trip, CUDA-fitted models on CPU-only
machines, preprocessing and versions carried along, a warning on version mismatch; and
the HTML repr's link to the docs."""

import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import joblib
import numpy as np
import pytest
import torch

from skmsc import (
    InconsistentVersionWarning,
    KNNDetector,
    MeanShiftedContrastiveDetector,
    MeanShiftedFeatures,
)
from skmsc._estimators._base import current_versions


def _reload_with_versions(estimator, **versions):
    state = estimator.__getstate__()
    state["versions_"] = {**state["versions_"], **versions}
    loaded = type(estimator).__new__(type(estimator))
    loaded.__setstate__(pickle.loads(pickle.dumps(state)))
    return loaded


def test_loading_with_other_versions_warns_naming_them(fitted_lite0):
    with pytest.warns(InconsistentVersionWarning, match=r"torch 1\.0\.0 \(now "):
        loaded = _reload_with_versions(fitted_lite0, torch="1.0.0")
    assert loaded.versions_["torch"] == "1.0.0"  # what it was made with stays on record
    knn = KNNDetector().fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.warns(InconsistentVersionWarning, match="skmsc 0.0.1"):
        _reload_with_versions(knn, skmsc="0.0.1")


def test_loading_with_the_same_versions_is_silent(fitted_lite0, tmp_path):
    assert fitted_lite0.versions_ == current_versions()
    joblib.dump(fitted_lite0, tmp_path / "det.joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        joblib.load(tmp_path / "det.joblib")


def test_fitted_model_carries_its_preprocessing(fitted_lite0, digits, tmp_path):
    joblib.dump(fitted_lite0, tmp_path / "det.joblib")
    loaded = joblib.load(tmp_path / "det.joblib")
    assert loaded.backbone_spec_ == fitted_lite0.backbone_spec_  # mean, std, crop, resize
    assert loaded.image_size_ == 32 and loaded.input_shape_ == (8, 8)
    X = digits[0][-12:]
    # The loaded model preprocesses uint8 and float images as the original does.
    as_uint8 = np.round(X * 255).astype(np.uint8)
    for images in (as_uint8, as_uint8 / 255.0):
        np.testing.assert_array_equal(loaded.score_samples(images),
                                      fitted_lite0.score_samples(images))


def test_feature_transformer_round_trip(digits, tmp_path):
    X = digits[0][:10]
    features = MeanShiftedFeatures(
        "efficientnet_lite0", epochs=0, batch_size=8, image_size=32, random_state=0
    ).fit(X)
    joblib.dump(features, tmp_path / "f.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "f.joblib").transform(X),
                                  features.transform(X))


@pytest.mark.parametrize("estimator", [MeanShiftedContrastiveDetector(), KNNDetector(),
                                       MeanShiftedFeatures()])
def test_html_repr_links_to_our_docs(estimator):
    name = type(estimator).__name__
    url = f"https://skmsc.readthedocs.io/en/latest/api/generated/skmsc.{name}.html"
    assert estimator._get_doc_link() == url
    assert url in estimator._repr_html_()


@pytest.mark.parametrize("estimator", [MeanShiftedContrastiveDetector(), KNNDetector(),
                                       MeanShiftedFeatures()])
def test_html_repr_link_is_a_page_the_docs_build_writes(estimator):
    from pathlib import Path

    from skmsc._estimators._base import DOCS_URL

    html = Path(__file__).resolve().parents[2] / "docs" / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.skip("docs not built: run the Sphinx build first")
    page = estimator._get_doc_link().removeprefix(DOCS_URL)
    assert (html / page).is_file(), page


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to fit on")
def test_model_fitted_on_cuda_scores_in_a_process_without_cuda(digits, tmp_path):
    X = digits[0]
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", epochs=1, batch_size=8, image_size=32, device="cuda",
        random_state=0,
    ).fit(X[:40])
    assert det.device_.type == "cuda"
    joblib.dump(det, tmp_path / "det.joblib")
    np.save(tmp_path / "X.npy", X[-20:])
    script = textwrap.dedent(f"""
        import joblib, numpy as np, torch
        assert not torch.cuda.is_available()
        det = joblib.load({str(tmp_path / "det.joblib")!r})
        assert det.device_.type == "cpu"
        np.save({str(tmp_path / "scores.npy")!r}, det.score_samples(np.load({str(tmp_path / "X.npy")!r})))
    """)  # noqa: E501
    subprocess.run([sys.executable, "-c", script], check=True,
                   env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    np.testing.assert_allclose(
        np.load(tmp_path / "scores.npy"), det.score_samples(X[-20:]), rtol=1e-4, atol=1e-4
    )
