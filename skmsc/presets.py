"""Named detector settings: the paper's, and the measured CPU setting.

A preset is a plain dict of :class:`~skmsc.MeanShiftedContrastiveDetector` parameters, so it
combines with any other parameter and survives ``clone``, ``GridSearchCV`` and ``save``::

    from skmsc import MeanShiftedContrastiveDetector
    from skmsc.presets import preset

    det = MeanShiftedContrastiveDetector(**preset("cpu"), random_state=0)

What each preset gives on real data is measured in ``docs/benchmarks.md``.
"""

from __future__ import annotations

__all__ = ["PRESETS", "preset"]

#: The named settings: name -> dict of detector parameters (see :func:`preset`).
PRESETS = {
    # The paper's schedule (the estimator's defaults): ResNet152, 20 epochs at lr 1e-5.
    # Meant for a GPU; hours on a laptop CPU.
    "paper": dict(
        backbone="resnet152", image_size=224, epochs=20, batch_size=64, learning_rate=1e-5,
        frozen_stages="auto", early_stopping=True,
    ),
    # The CPU setting: the offline EfficientNet-Lite0 at the paper's 224 px, lr 3e-4,
    # batch 32, 4 epochs, the safeguard on (local and global proxy). Measured in
    # docs/benchmarks.md: on the CIFAR-10 development classes ROC-AUC still rose at
    # epoch 4; on ELPV the safeguard keeps the pretrained network.
    "cpu": dict(
        backbone="efficientnet_lite0", image_size=224, epochs=4, batch_size=32,
        learning_rate=3e-4, frozen_stages="auto", early_stopping=True,
    ),
}


def preset(name: str, **overrides) -> dict:
    """The detector parameters of preset ``name``, updated with ``overrides``.

    Parameters
    ----------
    name : {"paper", "cpu"}
        The preset (see :data:`PRESETS`).
    **overrides
        Parameters that replace the preset's or add to them.

    Returns
    -------
    params : dict
        Keyword arguments for :class:`~skmsc.MeanShiftedContrastiveDetector`.

    Examples
    --------
    >>> from skmsc.presets import preset
    >>> preset("cpu")["image_size"], preset("cpu", epochs=1)["epochs"]
    (224, 1)
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    return {**PRESETS[name], **overrides}
