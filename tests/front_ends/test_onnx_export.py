"""ONNX export (skmsc.onnx, `skmsc export`): the exported graph scores as the detector does.

Equality is checked on real photographs (scikit-image) with ``precision="float32"``, for
EfficientNet-Lite0 (packaged weights) and a ResNet with random weights: the two backbone
code paths (timm and torchvision, bicubic and bilinear resizing, uniform and per-channel
normalisation).
"""

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import FAST

from skmsc import KNNDetector, MeanShiftedContrastiveDetector
from skmsc.cli import EXIT_OK, EXIT_USAGE, main
from skmsc.nn._fixed_point_resize import fixed_point_pass
from skmsc.onnx import ONNXDetector, export_onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4
EXACT = dict(FAST, precision="float32", epochs=1, early_stopping=False)


def photo_patches(seed, n_per_photo, size=(40, 48)):
    """Crops of scikit-image's photographs: cat, coffee (fit); plus astronaut, rocket."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = {"chelsea": data.chelsea(), "coffee": data.coffee(),
              "astronaut": data.astronaut(), "rocket": data.rocket()}
    out = {}
    for name, photo in photos.items():
        tops = rng.integers(0, photo.shape[0] - size[0], n_per_photo)
        lefts = rng.integers(0, photo.shape[1] - size[1], n_per_photo)
        out[name] = np.stack([photo[t : t + size[0], s : s + size[1]]
                              for t, s in zip(tops, lefts, strict=True)])
    return out


@pytest.fixture(scope="module")
def photos():
    train = photo_patches(0, 20)
    test = photo_patches(1, 8)
    return (np.concatenate([train["chelsea"], train["coffee"]]),
            np.concatenate(list(test.values())))


@pytest.fixture(scope="module")
def lite0_export(photos, tmp_path_factory):
    X, _ = photos
    det = MeanShiftedContrastiveDetector(**EXACT).fit(X)
    path = export_onnx(det, tmp_path_factory.mktemp("onnx") / "lite0.onnx")
    return det, path


# ------------------------------------------------------------- the preprocessing, bit for bit
@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", [(28, 28, 256, 256), (8, 8, 37, 37), (200, 180, 256, 230),
                                   (1000, 700, 320, 224), (37, 53, 64, 91)])
def test_fixed_point_passes_equal_torch_uint8_resize(mode, channels, shape):
    height, width, out_height, out_width = shape
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, height, width, channels),
                                               dtype=np.uint8)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    expected = F.interpolate(images, size=(out_height, out_width), mode=mode, antialias=True,
                             align_corners=False)
    horizontal = fixed_point_pass(width, out_width, mode)
    vertical = fixed_point_pass(height, out_height, mode)
    dtype = torch.float32 if horizontal.float32_exact and vertical.float32_exact \
        else torch.float64
    ours = vertical.apply(horizontal.apply(images.to(dtype), axis=-1), axis=-2)
    assert torch.equal(ours.to(torch.uint8), expected)


# ------------------------------------------------------------- scores equal the detector's
def test_lite0_export_scores_as_the_detector(lite0_export, photos):
    det, path = lite0_export
    _, X_test = photos
    onnx_det = ONNXDetector(path)
    expected = det.score_samples(X_test)
    scores = onnx_det.score_samples(X_test)
    assert scores.dtype == np.float64 and scores.shape == (len(X_test),)
    assert np.abs(scores - expected).max() < TOLERANCE
    assert onnx_det.offset_ == det.offset_
    np.testing.assert_allclose(onnx_det.decision_function(X_test),
                               det.decision_function(X_test), atol=TOLERANCE)
    assert (onnx_det.predict(X_test) == det.predict(X_test)).all()
    assert set(onnx_det.predict(X_test)) <= {-1, 1}
    # The batch axis is free: one image at a time gives the same scores.
    one_by_one = ONNXDetector(path, batch_size=1).score_samples(X_test[:3])
    np.testing.assert_allclose(one_by_one, scores[:3], atol=1e-6)


def test_openvino_runs_the_file_with_the_same_scores(lite0_export, photos):
    pytest.importorskip("openvino")
    det, path = lite0_export
    _, X_test = photos
    expected = det.score_samples(X_test)
    exact = ONNXDetector(path, runtime="openvino")
    assert np.abs(exact.score_samples(X_test) - expected).max() < TOLERANCE
    assert exact.offset_ == det.offset_
    fast = ONNXDetector(path, runtime="openvino", precision="auto")  # bfloat16 if native
    assert np.abs(fast.score_samples(X_test) - expected).max() < 0.5
    with pytest.raises(ValueError, match="needs runtime='openvino'"):
        ONNXDetector(path, precision="auto")
    with pytest.raises(ValueError, match="runtime="):
        ONNXDetector(path, runtime="tensorrt")


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])  # bicubic; bilinear, cropped
def test_resnet_export_scores_as_the_detector(backbone, photos, tmp_path):
    X, X_test = photos
    det = MeanShiftedContrastiveDetector(**{**EXACT, "backbone": backbone}, weights=None).fit(X)
    onnx_det = ONNXDetector(export_onnx(det, tmp_path / "resnet.onnx"))
    assert np.abs(onnx_det.score_samples(X_test) - det.score_samples(X_test)).max() < TOLERANCE


def test_exported_file_passes_the_checker_and_holds_its_metadata(lite0_export):
    det, path = lite0_export
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    metadata = json.loads({p.key: p.value for p in model.metadata_props}["skmsc"])
    assert metadata["offset"] == det.offset_
    assert metadata["input_size"] == [40, 48] and metadata["fitted_layout"] == "rgb"
    assert metadata["fitted_versions"] == det.versions_
    assert {"skmsc", "torch", "onnx"} <= set(metadata["versions"])
    images = model.graph.input[0].type.tensor_type
    assert images.elem_type == onnx.TensorProto.UINT8
    dims = images.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [40, 48, 3]


def test_runtime_needs_neither_torch_nor_scikit_learn(lite0_export, photos, tmp_path):
    det, path = lite0_export
    _, X_test = photos
    np.save(tmp_path / "X.npy", X_test)
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from skmsc.onnx import ONNXDetector
        det = ONNXDetector({str(path)!r})
        scores = det.score_samples(np.load({str(tmp_path / "X.npy")!r}))
        np.save({str(tmp_path / "scores.npy")!r}, scores)
        print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "sklearn"}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    scores = np.load(tmp_path / "scores.npy")
    assert np.abs(scores - det.score_samples(X_test)).max() < TOLERANCE


# ------------------------------------------------------------- other fits
def test_grayscale_nndescent_detector_exports_the_exact_search(digits, tmp_path):
    X, y = digits
    images = (X * 255).round().astype(np.uint8)
    train, test = images[y == 0][:60], images[:40]
    params = dict(FAST, precision="float32", epochs=0)
    approximate = MeanShiftedContrastiveDetector(**params, knn_algorithm="nndescent").fit(train)
    exact = MeanShiftedContrastiveDetector(**params, knn_algorithm="exact").fit(train)
    np.testing.assert_array_equal(approximate.train_features_, exact.train_features_)
    with pytest.warns(UserWarning, match="searches it exactly"):
        path = export_onnx(approximate, tmp_path / "gray.onnx")
    onnx_det = ONNXDetector(path)
    assert onnx_det.offset_ == approximate.offset_  # kept as fitted, as the warning says
    assert np.abs(onnx_det.score_samples(test) - exact.score_samples(test)).max() < TOLERANCE
    with pytest.raises(ValueError, match=r"takes \(n, 8, 8\) images"):
        onnx_det.score_samples(np.repeat(test[..., None], 3, axis=3))


def test_bfloat16_gallery_exports_with_a_warning(photos, tmp_path):
    X, _ = photos
    settings = {**EXACT, "backbone": "resnet18", "epochs": 0, "precision": "bfloat16"}
    det = MeanShiftedContrastiveDetector(**settings, weights=None).fit(X[:20])
    with pytest.warns(UserWarning, match="extracted in bfloat16"):
        export_onnx(det, tmp_path / "bf16.onnx")


# ------------------------------------------------------------- clear errors
def test_export_refuses_what_it_cannot_export(lite0_export, tmp_path):
    det, _ = lite0_export
    features = MeanShiftedContrastiveDetector().fit(np.random.default_rng(0).normal(size=(9, 4)))
    with pytest.raises(ValueError, match="no network to export"):
        export_onnx(features, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="no network to export"):
        export_onnx(KNNDetector().fit(np.random.default_rng(0).normal(size=(9, 4))),
                    tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_runtime_refuses_bad_images_with_the_fix(lite0_export, photos, tmp_path):
    _, path = lite0_export
    _, X_test = photos
    onnx_det = ONNXDetector(path)
    with pytest.raises(TypeError, match=r"np.round\(X \* 255\)"):
        onnx_det.score_samples(X_test / 255.0)
    with pytest.raises(ValueError, match="exported for 40x48"):
        onnx_det.score_samples(X_test[:, :32, :32])
    with pytest.raises(ValueError, match="0-255"):
        onnx_det.score_samples(X_test.astype(np.int16) * 2)
    with pytest.raises(ValueError, match="n >= 1"):
        onnx_det.score_samples(X_test[:0])
    np.testing.assert_array_equal(  # other integer dtypes in 0-255 are fine
        onnx_det.score_samples(X_test[:2].astype(np.int64)), onnx_det.score_samples(X_test[:2]))
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        ONNXDetector(tmp_path / "bad.onnx")
    with pytest.raises(FileNotFoundError, match="skmsc export"):
        ONNXDetector(tmp_path / "missing.onnx")


# ------------------------------------------------------------- the command line
def test_cli_export_of_a_file_fitted_model(image_folder, tmp_path, capsys):
    det = MeanShiftedContrastiveDetector(**EXACT).fit(image_folder.normal)
    model = det.save(tmp_path / "model")
    out = tmp_path / "det.onnx"
    # Fitted on files (any size): the size must be given.
    assert main(["export", str(model), str(out)]) == EXIT_USAGE
    assert "--input-size" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(model), str(out), "--input-size", "8x8"]) == EXIT_OK
    onnx_det = ONNXDetector(out)
    expected = det.score_samples(image_folder.test)  # the PNG files
    assert np.abs(onnx_det.score_samples(image_folder.test_array) - expected).max() < TOLERANCE
    # An existing file is replaced only when asked; the model folder is never written to.
    assert main(["export", str(model), str(out), "--input-size", "8x8"]) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(model), str(model / "x.onnx"), "--input-size", "8x8"]) \
        == EXIT_USAGE
    assert sorted(p.name for p in model.iterdir()) == ["detector.json", "tensors.safetensors"]
    assert main(["export", str(model), str(out), "--input-size", "8by8"]) == EXIT_USAGE
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["export", str(model), str(out), "--input-size", "8x8",
                     "--overwrite"]) == EXIT_OK


def test_export_refuses_an_existing_file_unless_told(fitted_lite0, tmp_path):
    """Issue #25 item 8: export_onnx overwrites only with overwrite=True, like the CLI."""
    path = tmp_path / "mine.onnx"
    path.write_bytes(b"someone's file")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(fitted_lite0, path)
    assert path.read_bytes() == b"someone's file"


def test_array_fitted_detector_exports_another_input_size(lite0_export, photos, tmp_path):
    """Issue #25 item 3: the detector scores any size, so the export may take another."""
    det, path = lite0_export
    _, test = photos
    bigger = np.repeat(np.repeat(test[:4], 2, axis=1), 2, axis=2)  # 80x96
    other = export_onnx(det, tmp_path / "big.onnx", input_size=bigger.shape[1:3])
    scores = ONNXDetector(other).score_samples(bigger)
    assert np.abs(scores - det.score_samples(bigger)).max() < TOLERANCE
    export_onnx(det, path, overwrite=True)  # replaces the file it wrote
    assert ONNXDetector(path).score_samples(test[:2]).shape == (2,)
