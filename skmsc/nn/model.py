"""The pure PyTorch part of the method: the encoder and the mean-shifted contrastive loss.

No data handling and no training loop live here (see ``skmsc.nn._training``), so the loss and
the model can be read, tested and reused on their own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MeanShiftedEncoder", "mean_shifted_contrastive_loss", "nt_xent_loss"]


class MeanShiftedEncoder(nn.Module):
    """A headless backbone whose output is L2-normalised onto the unit sphere.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps normalised images ``(n, 3, H, W)`` to features ``(n, d)``.

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn.model import MeanShiftedEncoder
    >>> backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    >>> z = MeanShiftedEncoder(backbone)(torch.rand(4, 3, 8, 8))
    >>> z.shape, torch.allclose(z.norm(dim=1), torch.ones(4))
    (torch.Size([4, 5]), True)
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # float32 before normalising: under mixed precision the backbone's output is
        # 16-bit, but the unit vectors feed distances that need float32's resolution.
        return F.normalize(self.backbone(images).float(), dim=1)

    def train(self, mode: bool = True) -> MeanShiftedEncoder:
        # The method keeps BatchNorm statistics frozen while fine-tuning (the reference
        # calls eval() once and never train()); refusing train mode makes that hold even
        # when outside code calls .train().
        return super().train(False)


def nt_xent_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR) loss between two views; rows of ``a`` and ``b`` are positives.

    Each of the ``2n`` samples is classified against the other ``2n - 1`` by cosine
    similarity divided by ``temperature``; the target is its other view.

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn.model import nt_xent_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> a = torch.nn.functional.normalize(torch.randn(8, 4, generator=g))
    >>> aligned = nt_xent_loss(a, a, temperature=0.25)
    >>> shuffled = nt_xent_loss(a, a.roll(1, dims=0), temperature=0.25)
    >>> bool(aligned < shuffled)  # matching views give a lower loss
    True
    """
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]), dim=1)
    logits = (z @ z.T) / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def mean_shifted_contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    center: torch.Tensor,
    temperature: float = 0.25,
    angular: bool = False,
) -> torch.Tensor:
    """The mean-shifted contrastive loss of Reiss & Hoshen (AAAI 2023).

    Parameters
    ----------
    z1, z2 : torch.Tensor of shape (n, d)
        L2-normalised features of two augmented views of the same ``n`` images.
    center : torch.Tensor of shape (d,)
        Mean of the normalised pretrained features of the training set.
    temperature : float, default=0.25
    angular : bool, default=False
        Add the angular centre loss: the mean squared norm of ``z - center`` of both views,
        which pulls normal features towards the centre.

    Returns
    -------
    loss : torch.Tensor
        A scalar.

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn.model import mean_shifted_contrastive_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> z1 = torch.nn.functional.normalize(torch.randn(8, 16, generator=g))
    >>> z2 = torch.nn.functional.normalize(z1 + 0.1 * torch.randn(8, 16, generator=g))
    >>> center = z1.mean(dim=0)
    >>> loss = mean_shifted_contrastive_loss(z1, z2, center, temperature=0.25)
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """
    shifted1, shifted2 = z1 - center, z2 - center
    # nt_xent_loss re-normalises the shifted features: the loss sees only their angles
    # around the centre, which is what makes it "mean-shifted".
    loss = nt_xent_loss(shifted1, shifted2, temperature)
    if angular:
        loss = loss + shifted1.pow(2).sum(dim=1).mean() + shifted2.pow(2).sum(dim=1).mean()
    return loss
