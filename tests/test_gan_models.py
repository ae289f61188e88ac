"""Behaviour of the label-conditioned GAN architectures at every supported size (tiny widths)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from histosynth.errors import ConfigError
from histosynth.generators.gan.losses import discriminator_loss
from histosynth.generators.gan.models import build_discriminator, build_generator, get_recipe, known_archs
from histosynth.generators.gan.models.sagan import SelfAttention

N_CLASSES = 3
WIDTH = 4
BATCH = 4
ARCH_SIZES = [(arch, size) for arch in known_archs() for size in get_recipe(arch).image_sizes]
SMALLEST = [(arch, min(get_recipe(arch).image_sizes)) for arch in known_archs()]


def build_pair(arch: str, size: int, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    latent = get_recipe(arch).latent_dim
    return build_generator(arch, N_CLASSES, size, latent, WIDTH), build_discriminator(arch, N_CLASSES, size, WIDTH)


def latents(arch: str, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(BATCH, get_recipe(arch).latent_dim, generator=gen)
    return z, torch.arange(BATCH) % N_CLASSES


@pytest.mark.parametrize(("arch", "size"), ARCH_SIZES)
def test_shapes_range_and_scores(arch: str, size: int) -> None:
    G, D = build_pair(arch, size)
    z, y = latents(arch)
    x = G(z, y)
    assert x.shape == (BATCH, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1
    scores = D(x, y)
    # one score per image, or (projected) a row of patch logits per image
    assert scores.shape == ((BATCH, 64) if arch == "projected" else (BATCH,))
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize(("arch", "size"), ARCH_SIZES)
def test_label_changes_generator_and_discriminator_output(arch: str, size: int) -> None:
    G, D = build_pair(arch, size)
    G.eval(), D.eval()
    z, y = latents(arch)
    other = (y + 1) % N_CLASSES
    with torch.no_grad():
        x = G(z, y)
        x_other = G(z, other)
        per_sample_change = (x - x_other).abs().flatten(1).amax(dim=1)
        assert (per_sample_change > 1e-6).all()
        assert (D(x, y) - D(x, other)).abs().min() > 1e-7


@pytest.mark.parametrize("arch", known_archs())
def test_unsupported_size_names_the_supported_ones(arch: str) -> None:
    sizes = ", ".join(map(str, get_recipe(arch).image_sizes))
    expected = f"gan.arch={arch} supports image sizes {sizes}; data.image_size is 48"
    with pytest.raises(ConfigError, match=expected):
        build_generator(arch, N_CLASSES, 48, 8, WIDTH)
    with pytest.raises(ConfigError, match=expected):
        build_discriminator(arch, N_CLASSES, 48, WIDTH)


def test_unknown_arch_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="gan.arch='stylegan' is unknown; choose one of dcgan"):
        get_recipe("stylegan")


@pytest.mark.parametrize(("arch", "size"), SMALLEST)
def test_initialisation_is_deterministic_under_manual_seed(arch: str, size: int) -> None:
    first, second = build_pair(arch, size, seed=5), build_pair(arch, size, seed=5)
    for a, b in zip(first, second):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    other_seed = build_pair(arch, size, seed=6)[0].state_dict()
    assert any(not torch.equal(v, other_seed[k]) for k, v in first[0].state_dict().items())


@pytest.mark.parametrize(("arch", "size"), SMALLEST)
def test_discriminator_learns_to_separate_a_fixed_batch(arch: str, size: int) -> None:
    """A few optimiser steps with the recipe's loss and learning rate reduce D's loss: gradients flow."""
    recipe = get_recipe(arch)
    G, D = build_pair(arch, size)
    z, y = latents(arch)
    with torch.no_grad():
        fake = G(z, y)
    gen = torch.Generator().manual_seed(2)
    real = (torch.rand(BATCH, 3, size, size, generator=gen) * 2 - 1).clamp(-1, 1)
    opt = torch.optim.Adam(D.parameters(), lr=recipe.d_lr, betas=recipe.betas)

    def loss() -> torch.Tensor:
        return discriminator_loss(recipe.loss, D(real, y), D(fake, y))

    torch.manual_seed(3)  # same dropout masks for the first and last evaluation
    before = loss().item()
    for _ in range(5):
        opt.zero_grad()
        loss().backward()
        opt.step()
    torch.manual_seed(3)
    after = loss().item()
    assert after < before


@pytest.mark.parametrize(("arch", "size"), SMALLEST)
def test_every_parameter_gets_a_gradient(arch: str, size: int) -> None:
    """No unused parameters in forward (DDP requires it)."""
    G, D = build_pair(arch, size)
    z, y = latents(arch)
    D(G(z, y), y).sum().backward()
    for model in (G, D):
        missing = [name for name, p in model.named_parameters() if p.grad is None]
        assert not missing


@pytest.mark.parametrize(("arch", "size"), SMALLEST)
def test_bfloat16_autocast_forward_and_backward(arch: str, size: int) -> None:
    G, D = build_pair(arch, size)
    z, y = latents(arch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = D(G(z, y), y)
    assert torch.isfinite(scores.float()).all()
    scores.float().mean().backward()
    grads = [p.grad for p in G.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


SPECTRALLY_NORMALISED = [("sagan", "G"), ("sagan", "D"), ("ascgan", "D")]


@pytest.mark.parametrize(("arch", "net"), SPECTRALLY_NORMALISED)
def test_spectral_norm_on_every_conv_and_linear(arch: str, net: str) -> None:
    for size in get_recipe(arch).image_sizes:
        model = build_pair(arch, size)[0 if net == "G" else 1]
        layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        assert layers
        for layer in layers:
            assert parametrize.is_parametrized(layer, "weight")
            assert type(layer.parametrizations.weight[0]).__name__ == "_SpectralNorm"


@pytest.mark.parametrize(
    ("size", "generator_at", "discriminator_at"),
    [(32, [16, 32], [32]), (64, [16, 32], [64, 32]), (128, [16, 32], [64, 32])],
)
def test_sagan_self_attention_sits_at_the_thesis_resolutions(
    size: int, generator_at: list[int], discriminator_at: list[int]
) -> None:
    G, D = build_pair("sagan", size)
    seen: list[int] = []
    for model in (G, D):
        for module in model.modules():
            if isinstance(module, SelfAttention):
                module.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].shape[-1]))
    z, y = latents("sagan")
    with torch.no_grad():
        D(G(z, y), y)
    assert seen == generator_at + discriminator_at


def test_paper_widths_give_the_documented_layer_sizes() -> None:
    """Built on the meta device: shapes only, no memory or init time for the full-size models."""
    with torch.device("meta"):
        sagan_g = build_generator("sagan", 4, 64, 128, get_recipe("sagan").paper_width)
        ascgan_g = build_generator("ascgan", 9, 28, 100, get_recipe("ascgan").paper_width)
        ascgan_d = build_discriminator("ascgan", 9, 28, get_recipe("ascgan").paper_width)
        cwgan_g = build_generator("cwgan128", 4, 128, 64, WIDTH)
        cwgan_d = build_discriminator("cwgan128", 4, 128, WIDTH)
    assert sagan_g.stem.out_features == 1024 * 4 * 4  # thesis: 4x4x1024 start at 64 px
    assert ascgan_g.dense.out_features == 1024 * 7 * 7  # paper: dense to 1024x7x7
    refine = [m.out_channels for m in ascgan_g.refine.modules() if isinstance(m, nn.Conv2d)]
    assert refine == [128, 64, 32, 3]  # refinement 256 -> 128 -> 64 -> 32, then RGB
    convs = [(m.in_channels, m.out_channels) for m in ascgan_d.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 64), (64, 128)] and ascgan_d.head.linear.in_features == 6272
    g_convs = [m for m in cwgan_g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.kernel_size for m in g_convs] == [(5, 5)] * 7
    d_convs = [m for m in cwgan_d.modules() if isinstance(m, nn.Conv2d)]
    assert [m.kernel_size for m in d_convs] == [(5, 5)] * 6
    assert [m.stride[0] for m in d_convs] == [2, 2, 2, 2, 2, 1]
