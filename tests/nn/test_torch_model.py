import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skmsc.nn.model import MeanShiftedEncoder, mean_shifted_contrastive_loss, nt_xent_loss


def _reference_nt_xent(a, b, temperature):
    """The reference implementation's formula, written with explicit exponentials."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    out = torch.cat([a, b])
    sim = torch.exp(out @ out.T / temperature)
    mask = ~torch.eye(len(out), dtype=torch.bool)
    denominator = sim.masked_select(mask).view(len(out), -1).sum(dim=1)
    positive = torch.exp((a * b).sum(dim=1) / temperature)
    positive = torch.cat([positive, positive])
    return (-torch.log(positive / denominator)).mean()


def test_nt_xent_hand_computed_two_orthogonal_pairs():
    # Views identical, the two images orthogonal: each row sees the positive at
    # similarity 1 and two negatives at similarity 0.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 0.25
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2.0))
    assert nt_xent_loss(a, a.clone(), t).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_matches_reference_formula():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=gen), torch.randn(7, 5, generator=gen)
    for t in (0.1, 0.25, 1.0):
        assert nt_xent_loss(a, b, t).item() == pytest.approx(
            _reference_nt_xent(a, b, t).item(), rel=1e-5
        )


def test_mean_shift_is_applied():
    gen = torch.Generator().manual_seed(1)
    z1 = F.normalize(torch.randn(6, 4, generator=gen), dim=1)
    z2 = F.normalize(torch.randn(6, 4, generator=gen), dim=1)
    center = torch.tensor([0.3, -0.2, 0.1, 0.5])
    loss = mean_shifted_contrastive_loss(z1, z2, center, 0.25)
    assert loss.item() == pytest.approx(nt_xent_loss(z1 - center, z2 - center, 0.25).item())
    assert loss.item() != pytest.approx(nt_xent_loss(z1, z2, 0.25).item(), rel=1e-3)


def test_angular_term_adds_squared_distances_to_center():
    gen = torch.Generator().manual_seed(2)
    z1 = F.normalize(torch.randn(5, 3, generator=gen), dim=1)
    z2 = F.normalize(torch.randn(5, 3, generator=gen), dim=1)
    center = torch.tensor([0.1, 0.2, 0.3])
    plain = mean_shifted_contrastive_loss(z1, z2, center, 0.25, angular=False)
    angular = mean_shifted_contrastive_loss(z1, z2, center, 0.25, angular=True)
    extra = ((z1 - center) ** 2).sum(1).mean() + ((z2 - center) ** 2).sum(1).mean()
    assert (angular - plain).item() == pytest.approx(extra.item(), rel=1e-6)


def test_encoder_normalises_and_stays_in_eval_mode():
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(1))
    encoder = MeanShiftedEncoder(backbone)
    encoder.train()
    assert not encoder.training and not backbone[1].training
    out = encoder(torch.rand(3, 3, 5, 5))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
