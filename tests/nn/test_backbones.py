import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skmsc.nn.backbones import (
    BACKBONES,
    BackboneSpec,
    build_backbone,
    empty_backbone,
    freeze_stages,
    load_state_dict_file,
    stages,
    torchvision_weights_path,
)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def _no_download(*args, **kwargs):
    raise OSError("network unreachable (test)")


def test_imagenet_weights_come_from_the_torch_cache(torch_home, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    path, url = torchvision_weights_path("resnet18")
    # The paper's weights: IMAGENET1K_V1, cached under $TORCH_HOME/hub/checkpoints.
    assert path == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert url.endswith("resnet18-f37072fd.pth")
    reference, _ = build_backbone("resnet18", weights=None)
    import torchvision

    full = torchvision.models.resnet18(weights=None)
    path.parent.mkdir(parents=True)
    torch.save(full.state_dict(), path)
    model, spec = build_backbone("resnet18", weights="imagenet")
    assert spec.feature_dim == 512
    torch.testing.assert_close(model.conv1.weight, full.conv1.weight)
    torch.testing.assert_close(model.layer4[1].bn2.running_var, full.layer4[1].bn2.running_var)
    assert isinstance(model.fc, torch.nn.Identity)
    assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 512)


def test_missing_weights_without_network_name_the_file_and_the_offline_backbone(
    torch_home, monkeypatch
):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    with pytest.raises(OSError) as info:
        build_backbone("resnet152", weights="imagenet")
    message = str(info.value)
    assert "resnet152-394f9c45.pth" in message
    assert str(torch_home) in message
    assert "efficientnet_lite0" in message


def test_explicit_weight_path_with_or_without_classifier(tmp_path):
    import torchvision

    full = torchvision.models.resnet34(weights=None)
    with_head = tmp_path / "with_head.pth"
    torch.save(full.state_dict(), with_head)
    model, _ = build_backbone("resnet34", weights=with_head)
    torch.testing.assert_close(model.layer3[0].conv1.weight, full.layer3[0].conv1.weight)

    headless = tmp_path / "headless.pth"
    torch.save(model.state_dict(), headless)
    again, _ = build_backbone("resnet34", weights=str(headless))
    torch.testing.assert_close(again.layer3[0].conv1.weight, full.layer3[0].conv1.weight)


def test_weights_of_another_architecture_are_refused_clearly(tmp_path):
    import torchvision

    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit backbone 'resnet50'"):
        build_backbone("resnet50", weights=path)


def test_files_that_are_not_state_dicts_are_refused(tmp_path):
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_state_dict_file(not_a_dict)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match="Could not load weights"):
        load_state_dict_file(garbage)
    with pytest.raises(FileNotFoundError):
        load_state_dict_file(tmp_path / "absent.pth")


class _RunsCode:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_weight_files_cannot_execute_code(tmp_path, how):
    from skmsc import MeanShiftedContrastiveDetector

    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    payload = {"conv1.weight": _RunsCode(marker)}
    if how == "pickle":
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    else:
        torch.save(payload, path)
    with pytest.raises(ValueError, match="Could not load weights"):
        load_state_dict_file(path)
    with pytest.raises(ValueError, match="Could not load weights"):
        MeanShiftedContrastiveDetector("resnet18", weights=path).fit(np.zeros((4, 8, 8)))
    assert not marker.exists()
    pickle.loads(pickle.dumps(payload))["conv1.weight"].close()
    assert marker.exists()  # the payload is live: plain unpickling would have run it


@pytest.mark.parametrize("name, size", [("efficientnet_lite0", 224),
                                        ("efficientnet_lite1", 240),
                                        ("efficientnet_lite2", 260)])
def test_packaged_lite_weights_are_genuine_imagenet_weights(name, size):
    """Each offline backbone, with its classifier, names skimage's cat photo a cat."""
    from skimage import data

    from skmsc.nn.backbones import BACKBONES, packaged_lite_state_dict

    model = BACKBONES[name].new_model()
    model.load_state_dict(packaged_lite_state_dict(name, model), strict=True)
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    image = F.interpolate(image, size=(size, size), mode="bicubic", antialias=True)
    with torch.inference_mode():
        top = model.eval()((image - 0.5) / 0.5).argmax().item()
    assert 281 <= top <= 285  # ImageNet's domestic cat classes


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_keeps_all_its_tensors_in_its_state_dict(name):
    """Weights land in uninitialised memory: a tensor outside the state dict would stay so."""
    model = empty_backbone(name)  # raises if a parameter or buffer is outside it
    assert len(model.state_dict()) == len(list(model.parameters())) + len(list(model.buffers()))


def test_a_strict_load_writes_every_value_of_an_empty_backbone():
    name = "resnet18"
    model = empty_backbone(name)
    torch.manual_seed(0)
    trained = build_backbone(name, weights=None)[0]
    model.load_state_dict(trained.state_dict())
    for (key, value), (other, expected) in zip(model.state_dict().items(),
                                              trained.state_dict().items(), strict=True):
        assert key == other and torch.equal(value, expected)
        assert value.data_ptr() != expected.data_ptr()  # copied, not shared
    # A second empty backbone shares no memory with the first (each is a fresh copy).
    again = empty_backbone(name)
    assert {t.data_ptr() for t in again.state_dict().values()}.isdisjoint(
        t.data_ptr() for t in model.state_dict().values())


def test_a_backbone_with_a_tensor_outside_its_state_dict_is_refused(monkeypatch):
    def with_unsaved_buffer():
        model = torch.nn.Sequential(torch.nn.Linear(2, 2))
        model.register_buffer("scratch", torch.zeros(2), persistent=False)
        return model

    spec = BackboneSpec("toy", 2, (0.5,) * 3, (0.5,) * 3, 1.0, "bilinear", 0,
                        new_model=with_unsaved_buffer, drop_head=lambda m: m)
    monkeypatch.setitem(BACKBONES, "toy", spec)
    with pytest.raises(RuntimeError, match=r"outside its state dict: \['scratch'\]"):
        empty_backbone("toy")


def test_imagenet_weights_do_not_touch_the_global_random_state():
    state = torch.random.get_rng_state()
    build_backbone("efficientnet_lite0")
    empty_backbone("efficientnet_lite1")
    assert torch.equal(torch.random.get_rng_state(), state)


def test_unknown_backbone_and_weights_values():
    with pytest.raises(ValueError, match="Unknown backbone"):
        build_backbone("vgg16")
    with pytest.raises(ValueError, match="weights=42"):
        build_backbone("resnet18", weights=42)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_freezing_stages_stops_exactly_those_parameters(name):
    model, spec = empty_backbone(name), BACKBONES[name]  # the structure is what counts
    all_stages = stages(model, name)
    freeze_stages(model, name, spec.default_frozen_stages)
    frozen_ids = {
        id(p) for stage in all_stages[: spec.default_frozen_stages] for m in stage
        for p in m.parameters()
    }
    for p in model.parameters():
        assert p.requires_grad == (id(p) not in frozen_ids)
    with pytest.raises(ValueError, match="out of range"):
        freeze_stages(model, name, len(all_stages) + 1)
    # Every parameter belongs to some stage, so n_stages frozen means nothing trains.
    staged = {id(p) for stage in all_stages for m in stage for p in m.parameters()}
    assert staged == {id(p) for p in model.parameters()}


def test_default_frozen_stages_follow_the_paper():
    assert BACKBONES["resnet152"].default_frozen_stages == 3
    assert BACKBONES["resnet18"].default_frozen_stages == 0
    assert np.isclose(BACKBONES["resnet152"].crop_fraction, 224 / 256)
