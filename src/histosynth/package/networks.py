"""The generator's networks as JSON documents for ``gan_architectures.generator/discriminator``.

The networks are built from the training record exactly as training and generation build them,
then their module trees are walked: each module's type, its hyper-parameters (the attributes
PyTorch modules declare in ``__constants__``: channels, kernel size, stride, features, slope...),
its weight parametrizations (spectral norm) and parameter counts. The document depends on the
architecture only, never on trained weights, and is the same on every run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from histosynth.errors import DataError
from histosynth.generators import networks

JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


def _json_value(value: Any) -> JsonValue:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    return str(value)


def _module_type(module: nn.Module) -> str:
    # A parametrized module's class is a generated subclass (ParametrizedConv2d) of the real one.
    cls = type(module).__bases__[0] if parametrize.is_parametrized(module) else type(module)
    return cls.__name__


def describe_module(module: nn.Module, name: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if name is not None:
        node["name"] = name
    node["type"] = _module_type(module)
    node["parameters"] = sum(p.numel() for p in module.parameters())
    hyper = {key: _json_value(getattr(module, key)) for key in sorted(getattr(module, "__constants__", ()))
             if hasattr(module, key)}
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        hyper["bias"] = module.bias is not None
    if hyper:
        node["hyperparameters"] = hyper
    if parametrize.is_parametrized(module):
        node["parametrizations"] = {tensor: [type(p).__name__.lstrip("_") for p in plist]
                                    for tensor, plist in sorted(module.parametrizations.items())}
    children = [describe_module(child, child_name) for child_name, child in module.named_children()
                if child_name != "parametrizations"]
    if children:
        node["modules"] = children
    return node


def describe_gan(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(generator, discriminator) documents for a training record (``models/gan/record.json``).

    A diffusion model's generator is its UNet; it has no discriminator (``network`` is null).
    """
    try:
        arch, n_classes, image_size = record["arch"], int(record["n_classes"]), int(record["image_size"])
        latent_dim = int(record["latent_dim"])
        width = int(record.get("width", record.get("params", {}).get("width")))
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"GAN training record: arch, n_classes, image_size, latent_dim or width missing ({err}); "
                        "retrain the GAN (`dvc repro train`)") from None
    # On the meta device the networks cost no memory and draw nothing from torch's global RNG.
    with torch.device("meta"):
        generator, discriminator = networks(record)
    settings = {"arch": arch, "n_classes": n_classes, "image_size": image_size, "width": width}
    return ({**settings, "latent_dim": latent_dim, "network": describe_module(generator)},
            {**settings, "network": None if discriminator is None else describe_module(discriminator)})
