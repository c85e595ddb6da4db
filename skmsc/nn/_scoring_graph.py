"""The scoring path as one torch module, and its export to ONNX.

:class:`ScoringGraph` maps a uint8 batch ``(N, H, W, 3)`` of one fixed size to the
method's normality scores ``(N,)``: the evaluation preprocessing exactly as
:func:`skmsc.nn._preprocess.eval_inputs` does it on the CPU (torch's uint8 resize,
reproduced by :mod:`skmsc.nn._fixed_point_resize`; centre crop; normalisation), the
encoder with its L2 normalisation, and the exact k-nearest-neighbour search against the
gallery held as a constant (a matrix product and TopK on squared distances, then the
chosen distances recomputed in float64 as :mod:`skmsc.neighbors` does), and the scoring
rule of :class:`skmsc.neighbors.KNNScorer` applied to them. Nothing here
knows about estimators; ``skmsc.onnx`` builds the graph from a fitted detector.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings

import numpy as np
import torch
from torch import nn

from ..neighbors import KNNScorer
from ._fixed_point_resize import FixedPointPass, fixed_point_pass
from ._preprocess import crop_offsets, resized_size
from .backbones import BackboneSpec
from .model import MeanShiftedEncoder

__all__ = ["ScoringGraph", "export_onnx_model"]

#: Name of the exported graph's input (uint8 images) and output (scores).
INPUT_NAME, OUTPUT_NAME = "images", "scores"


class ScoringGraph(nn.Module):
    """uint8 images ``(N, H, W, 3)`` of size ``input_size`` to ``score_samples`` ``(N,)``.

    Parameters
    ----------
    encoder : MeanShiftedEncoder
        The fitted network (copied to the CPU in float32; the original is left alone).
    spec : BackboneSpec
        Its preprocessing (interpolation, crop fraction, mean and std).
    image_size : int
        Side of the square the network sees.
    input_size : tuple of int
        ``(H, W)`` of the images the graph takes.
    gallery : ndarray of shape (n_gallery, d)
        The training features searched.
    scorer : KNNScorer
        The scoring rule and its ``n_neighbors``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skmsc.nn import MeanShiftedNetwork
    >>> from skmsc.neighbors import KNNScorer
    >>> from skmsc.nn._scoring_graph import ScoringGraph
    >>> net = MeanShiftedNetwork.build("efficientnet_lite0", image_size=32, device="cpu")
    >>> X = np.random.default_rng(0).integers(0, 256, size=(6, 20, 24, 3), dtype=np.uint8)
    >>> gallery = net.extract(X[:4])
    >>> graph = ScoringGraph(net.encoder, net.spec, 32, (20, 24), gallery, KNNScorer(2))
    >>> graph(torch.from_numpy(X)).shape
    torch.Size([6])
    """

    def __init__(self, encoder: MeanShiftedEncoder, spec: BackboneSpec, image_size: int,
                 input_size: tuple[int, int], gallery: np.ndarray, scorer: KNNScorer):
        super().__init__()
        self.encoder = copy.deepcopy(encoder).to("cpu", torch.float32).eval()
        height, width = (int(v) for v in input_size)
        resized = resized_size(height, width, round(image_size / spec.crop_fraction))
        top, left = crop_offsets(*resized, image_size)
        self.rows = slice(top, top + image_size)
        self.columns = slice(left, left + image_size)
        # A pass runs only along an axis whose size changes (as torch's and Pillow's);
        # the crop keeps whole output rows and columns, so only their weights are kept.
        self.width_pass = _cropped_pass(width, resized[1], self.columns, spec.interpolation)
        self.height_pass = _cropped_pass(height, resized[0], self.rows, spec.interpolation)
        passes = [p for p in (self.width_pass, self.height_pass) if p is not None]
        exact32 = all(p.float32_exact for p in passes)
        self.resize_dtype = torch.float32 if exact32 else torch.float64
        # network_input's arithmetic: x * (1 / (255 std)) - mean / std, in float32.
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", mean / std)
        gallery = torch.from_numpy(np.ascontiguousarray(gallery, dtype=np.float32))
        self.register_buffer("gallery", gallery)
        self.register_buffer("gallery_sq_norms", gallery.pow(2).sum(dim=1))
        self.scorer = scorer
        self.n_neighbors = scorer.n_neighbors

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Resized and centre-cropped pixels ``(N, 3, S, S)`` float32 in 0-255."""
        x = images.permute(0, 3, 1, 2).to(self.resize_dtype)
        x = x[..., self.columns] if self.width_pass is None \
            else self.width_pass.apply(x, axis=-1)
        x = x[..., self.rows, :] if self.height_pass is None \
            else self.height_pass.apply(x, axis=-2)
        return x.to(torch.float32)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.pixels(images) * self.scale - self.shift)
        # Rank by the fast expansion, then recompute the k chosen distances in float64.
        d2 = (z * z).sum(dim=1, keepdim=True) + self.gallery_sq_norms - 2.0 * (z @ self.gallery.T)
        nearest = torch.topk(d2, self.n_neighbors, dim=1, largest=False).indices
        neighbours = torch.index_select(self.gallery, 0, nearest.reshape(-1))
        neighbours = neighbours.reshape(z.shape[0], self.n_neighbors, z.shape[1])
        return self.scorer.torch_scores(z.to(torch.float64), neighbours.to(torch.float64))


def _cropped_pass(in_size: int, out_size: int, keep: slice, mode: str):
    """The fixed-point pass from ``in_size`` to ``out_size`` pixels, only the output
    pixels in ``keep``; ``None`` when the size does not change (no pass runs)."""
    if in_size == out_size:
        return None
    full = fixed_point_pass(in_size, out_size, mode)
    return FixedPointPass(full.weights[keep], full.precision)


def export_onnx_model(graph: ScoringGraph, input_size: tuple[int, int]):
    """The ONNX ``ModelProto`` of ``graph`` with a dynamic batch axis (torch's exporter)."""
    example = torch.zeros((2, *input_size, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    # The exporter prints its progress to stdout and warns about its own internals.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph.eval(), (example,), dynamo=True, verbose=False,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
        )
    return program.model_proto
