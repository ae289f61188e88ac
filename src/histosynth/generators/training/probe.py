"""Held-out real-vs-fake probe (SEEDS.md, study of GAN internals).

A small CNN is trained from scratch to tell real validation images from generated ones and
scored on images it did not see. Accuracy near 0.5 means the generator's images are hard to
tell from real ones; near 1.0 means they are easy. Unlike G/D losses, this is comparable
across epochs, architectures and runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from histosynth.generators.training.seeds import derive_seed

# A fixed number of steps (not epochs), so the probe is as well trained for 40 images as for 400.
PROBE_STEPS = 200
PROBE_BATCH = 64
PROBE_LR = 2e-3
# Larger images are average-pooled to at most this size: keeps the probe cheap at 64 and 128 px.
PROBE_MAX_SIZE = 32


def _probe_network() -> nn.Module:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2)]

    return nn.Sequential(*block(3, 8), *block(8, 16), *block(16, 16),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1))


def _shrink(x: torch.Tensor) -> torch.Tensor:
    factor = max(1, x.shape[-1] // PROBE_MAX_SIZE)
    return F.avg_pool2d(x, factor) if factor > 1 else x


def real_vs_fake_accuracy(real: torch.Tensor, fake: torch.Tensor, seed: int) -> float:
    """Accuracy of a probe fitted on one half of ``real`` and ``fake`` and scored on the other half.

    ``real`` and ``fake``: (N, 3, H, W) in [-1, 1] on the same device, same N (pair the fakes'
    labels with the real ones so that class balance cannot give the answer away).
    """
    n = min(len(real), len(fake))
    half = n // 2
    if half < 2:
        raise ValueError(f"the real-vs-fake probe needs at least 4 real and 4 fake images, got {n}")
    x = _shrink(torch.cat([real[:n], fake[:n]]).float())
    is_real = torch.cat([torch.ones(n), torch.zeros(n)]).to(x.device)
    torch.manual_seed(derive_seed(seed, "probe"))
    pairs = torch.randperm(n)  # real image i and fake image i (same label) land in the same half
    fit = torch.cat([pairs[:half], n + pairs[:half]]).to(x.device)
    score = torch.cat([pairs[half:], n + pairs[half:]]).to(x.device)
    probe = _probe_network().to(x.device)
    optimiser = torch.optim.Adam(probe.parameters(), lr=PROBE_LR)
    for _ in range(PROBE_STEPS):
        batch = fit[torch.randint(len(fit), (min(PROBE_BATCH, len(fit)),), device=x.device)]
        loss = F.binary_cross_entropy_with_logits(probe(x[batch]).squeeze(1), is_real[batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        predicted_real = probe(x[score]).squeeze(1) > 0
    return (predicted_real == is_real[score].bool()).float().mean().item()
