"""save/load without pickle: round trips, and clear errors for damaged or hostile files."""

import json
import pickle
import warnings

import numpy as np
import pytest
import torch
from saved_models import rebind, record_tensor_hash
from sklearn.exceptions import NotFittedError

from skmsc import MeanShiftedContrastiveDetector
from skmsc.persistence import JSON_NAME, TENSORS_NAME, load, save


def _rehash(folder):
    """Make the two files agree again, as a careful attacker would."""
    rebind(folder)


def _public_fitted(estimator) -> set[str]:
    return {name for name in vars(estimator) if name.endswith("_") and not name.startswith("_")}


def _same(a, b) -> bool:
    if isinstance(a, torch.nn.Module):
        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _assert_same_fitted_state(copy, original):
    """Every public fitted attribute (``*_``) is declared as a saved field and is the same
    in ``copy``; so is every declared private field."""
    declared = {field.name for field in type(original)._fitted_fields()}
    unsaved = _public_fitted(original) - declared
    assert not unsaved, (
        f"{sorted(unsaved)} not declared in a _FITTED_FIELDS of {type(original).__name__}: "
        "they would be lost by save/load")
    assert _public_fitted(copy) == _public_fitted(original)
    for name in declared:
        if hasattr(original, name):
            assert _same(getattr(copy, name), getattr(original, name)), name
        else:
            assert not hasattr(copy, name), name


def _fitted_estimators(fitted_lite0, digits):
    from skmsc import KNNDetector, MeanShiftedFeatures

    X, y = digits
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 3))
    features = MeanShiftedFeatures(backbone="efficientnet_lite0", epochs=0, batch_size=16,
                                   image_size=32, random_state=0).fit(X[y == 1][:20])
    return {
        "image detector": fitted_lite0,
        "feature-vector detector": MeanShiftedContrastiveDetector(random_state=0).fit(vectors),
        "reduced gallery": KNNDetector(gallery_size=10, random_state=0).fit(vectors),
        "features": features,
    }


def test_every_public_fitted_attribute_round_trips(fitted_lite0, digits, tmp_path):
    """save/load and pickle keep every ``*_`` attribute: adding one without declaring it
    in the class's ``_FITTED_FIELDS`` fails here."""
    for kind, estimator in _fitted_estimators(fitted_lite0, digits).items():
        loaded = load(save(estimator, tmp_path / kind))
        _assert_same_fitted_state(loaded, estimator)
        _assert_same_fitted_state(pickle.loads(pickle.dumps(estimator)), estimator)


def test_an_undeclared_fitted_attribute_is_caught(tmp_path):
    from skmsc import KNNDetector

    det = KNNDetector().fit(np.random.default_rng(0).normal(size=(20, 2)))
    det.new_thing_ = 1.0
    with pytest.raises(AssertionError, match="new_thing_"):
        _assert_same_fitted_state(load(save(det, tmp_path / "k")), det)


@pytest.fixture
def saved(fitted_lite0, tmp_path):
    return fitted_lite0.save(tmp_path / "det")


def test_image_detector_round_trip(fitted_lite0, saved, digits):
    loaded = MeanShiftedContrastiveDetector.load(saved)
    X = digits[0][-30:]
    np.testing.assert_array_equal(loaded.score_samples(X), fitted_lite0.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X), fitted_lite0.predict(X))
    assert loaded.get_params() == fitted_lite0.get_params()
    _assert_same_fitted_state(loaded, fitted_lite0)
    assert not any(p.requires_grad for p in loaded.encoder_.parameters())
    assert sorted(p.name for p in saved.iterdir()) == [JSON_NAME, TENSORS_NAME]


def test_feature_detector_round_trip_with_feature_names(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    det = MeanShiftedContrastiveDetector(
        contamination=0.1, random_state=np.random.RandomState(0)
    ).fit(frame)
    loaded = load(save(det, tmp_path / "f"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # column names are checked, not lost in scoring
        np.testing.assert_array_equal(loaded.score_samples(frame), det.score_samples(frame))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        loaded.score_samples(frame.to_numpy())
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    assert loaded.encoder_ is None and loaded.contamination == 0.1
    # A RandomState instance cannot live in JSON: it is recorded as not saved.
    document = json.loads((tmp_path / "f" / JSON_NAME).read_text())
    assert document["unsaved_params"] == ["random_state"] and loaded.random_state is None


def test_unfitted_detector_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        save(MeanShiftedContrastiveDetector(), tmp_path / "x")


def test_missing_files_are_clear_errors(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="folder written by save"):
        load(tmp_path / "nowhere")
    (saved / TENSORS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="save is incomplete"):
        load(saved)


def test_truncated_or_flipped_tensor_file_is_detected(saved):
    blob = (saved / TENSORS_NAME).read_bytes()
    (saved / TENSORS_NAME).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated, corrupted or replaced"):
        load(saved)
    flipped = bytearray(blob)
    flipped[-100] ^= 0xFF
    (saved / TENSORS_NAME).write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load(saved)


def test_truncated_or_edited_json_is_detected(saved):
    text = (saved / JSON_NAME).read_text()
    (saved / JSON_NAME).write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="not valid JSON"):
        load(saved)
    document = json.loads(text)
    document["params"]["n_neighbors"] = 3
    (saved / JSON_NAME).write_text(json.dumps(document))
    with pytest.raises(ValueError, match="JSON was edited, or the files come from different"):
        load(saved)  # the tensor file records the document it was saved with
    document["params"]["n_neighbors"] = "two"
    (saved / JSON_NAME).write_text(json.dumps(document))
    _rehash(saved)
    with pytest.raises(ValueError, match="Saved parameters are not valid"):
        load(saved)
    document = json.loads(text)
    document["fitted"]["backbone"] = "resnet18"
    (saved / JSON_NAME).write_text(json.dumps(document))
    _rehash(saved)
    with pytest.raises(ValueError, match="feature size does not match the backbone"):
        load(saved)
    document = json.loads(text)
    document["format_version"] = 99
    (saved / JSON_NAME).write_text(json.dumps(document))
    with pytest.raises(ValueError, match="format version 99"):
        load(saved)


def test_consistently_rehashed_but_wrong_tensors_are_refused(saved):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(saved / TENSORS_NAME))
    scores = tensors["train_scores_"]
    tensors["train_scores_"] = scores[:-1]
    save_file(tensors, str(saved / TENSORS_NAME))
    _rehash(saved)
    with pytest.raises(ValueError, match="train_scores_ does not match"):
        load(saved)
    tensors = load_file(str(saved / TENSORS_NAME))
    tensors["train_scores_"] = scores  # consistent with offset_ again: only the weights are wrong
    tensors["encoder.backbone.conv_head.weight"] = np.zeros((3, 3), np.float32)
    save_file(tensors, str(saved / TENSORS_NAME))
    _rehash(saved)
    with pytest.raises(ValueError, match="weights do not fit backbone 'efficientnet_lite0'"):
        load(saved)


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_a_pickle_payload_in_the_tensor_file_cannot_run(saved, tmp_path, how):
    marker = tmp_path / f"pwned-{how.replace('.', '-')}"
    # The payload is live: plain unpickling would run it.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()

    path = saved / TENSORS_NAME
    if how == "pickle":
        path.write_bytes(pickle.dumps({"train_features_": _Payload(marker)}))
    else:
        torch.save({"train_features_": _Payload(marker)}, path)
    record_tensor_hash(saved)  # with a matching SHA-256 the file is only parsed, never unpickled
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load(saved)
    assert not marker.exists()


def test_knn_detector_saves_and_loads_without_pickle(tmp_path):
    from skmsc import KNNDetector

    rng = np.random.default_rng(3)
    X, test = rng.normal(size=(60, 5)), rng.normal(size=(9, 5))
    det = KNNDetector(n_neighbors=3, contamination=0.05, random_state=0).fit(X)
    folder = det.save(tmp_path / "knn")
    for loaded in (KNNDetector.load(folder), load(folder)):
        assert type(loaded) is KNNDetector and loaded.get_params() == det.get_params()
        np.testing.assert_array_equal(loaded.score_samples(test), det.score_samples(test))
        np.testing.assert_array_equal(loaded.kneighbors(test)[1], det.kneighbors(test)[1])
        assert loaded.offset_ == det.offset_ and loaded.n_features_in_ == 5
    with pytest.raises(ValueError, match="holds a KNNDetector, not a MeanShiftedContrastive"):
        MeanShiftedContrastiveDetector.load(folder)


def test_feature_transformer_saves_and_loads_without_pickle(digits, tmp_path):
    from skmsc import MeanShiftedFeatures

    X, y = digits
    features = MeanShiftedFeatures(
        "efficientnet_lite0", epochs=1, batch_size=8, image_size=32, random_state=0
    ).fit(X[y == 3][:16])
    folder = save(features, tmp_path / "features")
    loaded = load(folder)
    assert type(loaded) is MeanShiftedFeatures
    np.testing.assert_array_equal(loaded.transform(X[-8:]), features.transform(X[-8:]))
    np.testing.assert_array_equal(loaded.center_, features.center_)
    assert loaded.loss_curve_ == features.loss_curve_
    assert loaded.get_feature_names_out().tolist() == features.get_feature_names_out().tolist()
    assert not any(p.requires_grad for p in loaded.encoder_.parameters())
