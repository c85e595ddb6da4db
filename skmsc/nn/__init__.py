"""The torch layer: everything that touches PyTorch, and nothing of scikit-learn.

:class:`MeanShiftedNetwork` is the one object the rest of the package uses. Inside:

- ``backbones``: the registry of pretrained networks
  (:data:`~skmsc.nn.backbones.BACKBONES`); a new backbone is one entry there;
- ``model``: the encoder and the mean-shifted contrastive loss (pure torch);
- ``augment``: batched MoCo-v2 augmentation;
- ``_preprocess``: evaluation and training transforms of image batches;
- ``_training``: the extraction and fine-tuning loops;
- ``_safeguard``: the label-free choice of the epoch to keep;
- ``_runtime``: device and precision;
- ``_network``: :class:`MeanShiftedNetwork`, which ties them together;
- ``_scoring_graph``: the scoring path as one module for ONNX export (``skmsc.onnx``), with
  ``_fixed_point_resize``: torch's uint8 resize as integer matrices.

The runtime helpers (:func:`resolve_device`, :func:`resolve_precision`, :func:`autocast`)
are public too, for code that runs the encoder itself (the benchmarks' ceilings).
"""

from ._network import FineTuning, MeanShiftedNetwork
from ._runtime import autocast, resolve_device, resolve_precision

__all__ = ["FineTuning", "MeanShiftedNetwork", "autocast", "resolve_device",
           "resolve_precision"]
