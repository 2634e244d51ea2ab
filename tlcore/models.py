"""Models split into a feature extractor and a head, so that features can be
extracted, aligned (MMD, CORAL, DANN) and frozen block by block.

``features`` is an ``nn.Sequential`` of blocks; ``freeze_depth`` counts blocks
from the input. torchvision backbones (``resnet18``, ``resnet50``,
``mobilenet_v3_small``, ``efficientnet_b0``, each also ``*_random_init``) come
through the same :class:`SplitModel` shape; see :mod:`tlcore.backbones`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .errors import UnknownNameError, ConfigError


class SplitModel(nn.Module):
    """``logits = head(features(x))``; ``features`` is a sequence of freezable blocks."""

    def __init__(self, features: nn.Sequential, head: nn.Module, feature_dim: int, name: str):
        super().__init__()
        self.features = features
        self.head = head
        self.feature_dim = feature_dim
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f)

    @property
    def num_blocks(self) -> int:
        return len(self.features)

    def freeze(self, depth: int) -> None:
        """Freeze the first ``depth`` feature blocks (``-1``: all of them, a linear probe).

        Frozen blocks also stay in eval mode (see :meth:`train`) so that
        batch-norm statistics do not drift while their weights are fixed.
        """
        if depth < -1 or depth > self.num_blocks:
            raise ConfigError(f"freeze_depth={depth} is out of range for {self.name}: use -1 (all) or 0..{self.num_blocks}")
        depth = self.num_blocks if depth == -1 else depth
        for i, block in enumerate(self.features):
            for p in block.parameters():
                p.requires_grad_(i >= depth)
        self._frozen_depth = depth

    def train(self, mode: bool = True) -> "SplitModel":
        super().train(mode)
        for i in range(getattr(self, "_frozen_depth", 0)):
            self.features[i].eval()
        return self


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int = 64, batch_norm: bool = False) -> SplitModel:
    """Two hidden ReLU layers for 2-D (vector) domains; with ``batch_norm``, each linear layer is
    followed by batch norm (``mlp_bn``: a small model whose statistics AdaBN can re-estimate)."""
    (d,) = input_shape

    def layer(n_in: int) -> nn.Sequential:
        norm = [nn.BatchNorm1d(hidden)] if batch_norm else []
        return nn.Sequential(nn.Linear(n_in, hidden), *norm, nn.ReLU())
    features = nn.Sequential(layer(d), layer(hidden))
    return SplitModel(features, nn.Linear(hidden, num_classes), hidden, "mlp_bn" if batch_norm else "mlp")


def lenet(input_shape: tuple[int, ...], num_classes: int, feature_dim: int = 128,
          channels: tuple[int, int] = (16, 32), fc_batch_norm: bool = False, name: str = "lenet") -> SplitModel:
    """LeNet-style CNN: conv ``channels[0]`` → pool → conv ``channels[1]`` → pool → fc ``feature_dim``,
    with batch norm after each convolution (and after the fc layer too with ``fc_batch_norm``: ``lenet_bn``,
    normalised at every hidden layer as AdaBN's networks are). Works for any input of at least 16×16.

    The default (16, 32) trains about 2× faster on a CPU core than the DANN paper's
    (32, 48) (Ganin et al., JMLR 2016), which ``lenet_wide`` builds for benchmark runs.
    """
    c, h, w = input_shape
    c1, c2 = channels
    if h < 16 or w < 16:
        raise ConfigError(f"lenet needs images of at least 16×16, got {h}×{w}")
    conv = nn.Sequential(
        nn.Sequential(nn.Conv2d(c, c1, 5), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(c1, c2, 5), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2)),
    )
    with torch.no_grad():
        flat = conv(torch.zeros(1, c, h, w)).numel()
    fc_norm = [nn.BatchNorm1d(feature_dim)] if fc_batch_norm else []
    features = nn.Sequential(*conv, nn.Sequential(nn.Flatten(), nn.Linear(flat, feature_dim), *fc_norm, nn.ReLU()))
    return SplitModel(features, nn.Linear(feature_dim, num_classes), feature_dim, name)


@dataclass(frozen=True)
class ModelInfo:
    """One entry of :data:`MODELS`: the input kinds it takes, a one-line description, its builder
    ``build(input_shape, num_classes)``, and for a torchvision backbone its ``architecture`` (a
    :data:`BACKBONES` key) and whether it starts from ImageNet weights (``pretrained``)."""

    name: str
    kinds: frozenset[str]
    description: str
    build: Callable[[tuple[int, ...], int], SplitModel]
    architecture: str | None = None
    pretrained: bool = False


def _backbone(arch: str, pretrained: bool) -> Callable[[tuple[int, ...], int], SplitModel]:
    """A builder for a torchvision backbone (tlcore.backbones, imported only when one is built)."""

    def build(input_shape: tuple[int, ...], num_classes: int) -> SplitModel:
        from .backbones import build_backbone

        return build_backbone(arch, input_shape, num_classes, pretrained=pretrained)

    return build


# The torchvision backbones (tlcore/backbones.py: 5 freezable stages + a new linear head), by
# architecture name and title. Each is a model twice: ``name`` with ImageNet weights, and
# ``name`` + RANDOM_INIT_SUFFIX, random initialisation chosen explicitly.
BACKBONES: dict[str, str] = {
    "resnet18": "ResNet-18",
    "resnet50": "ResNet-50",
    "mobilenet_v3_small": "MobileNetV3-Small",
    "efficientnet_b0": "EfficientNet-B0",
}
RANDOM_INIT_SUFFIX = "_random_init"
_IMAGENET = "ImageNet weights (torch cache or download; an error offline, never a silent fallback)"
_RANDOM = "random initialisation, chosen explicitly (no pretrained weights)"


def _backbone_models() -> dict[str, ModelInfo]:
    models = {}
    for arch, title in BACKBONES.items():
        for pretrained, name, how in ((True, arch, _IMAGENET), (False, arch + RANDOM_INIT_SUFFIX, _RANDOM)):
            models[name] = ModelInfo(name, frozenset({"image"}), f"{title}, {how}", _backbone(arch, pretrained),
                                     architecture=arch, pretrained=pretrained)
    return models


MODELS: dict[str, ModelInfo] = {
    "mlp": ModelInfo("mlp", frozenset({"vector"}), "2 hidden ReLU layers of 64 units", mlp),
    "mlp_bn": ModelInfo("mlp_bn", frozenset({"vector"}), "2 hidden ReLU layers of 64 units, with batch norm",
                        lambda shape, n: mlp(shape, n, batch_norm=True)),
    "lenet": ModelInfo("lenet", frozenset({"image"}), "LeNet-style CNN (conv16-conv32-fc128, batch norm)", lenet),
    "lenet_wide": ModelInfo("lenet_wide", frozenset({"image"}), "the DANN paper's digits CNN widths (conv32-conv48-fc128)",
                            lambda shape, n: lenet(shape, n, channels=(32, 48))),
    "lenet_bn": ModelInfo("lenet_bn", frozenset({"image"}), "LeNet-style CNN with batch norm at every hidden layer "
                          "(conv16-conv32-fc128, the fc layer normalised too)",
                          lambda shape, n: lenet(shape, n, fc_batch_norm=True, name="lenet_bn")),
    **_backbone_models(),
}
DEFAULT_MODEL = {"vector": "mlp", "image": "lenet"}


def models_for(kind: str) -> list[str]:
    """The :data:`MODELS` names that take ``kind`` ("vector" or "image") inputs, in registry order."""
    return [name for name, info in MODELS.items() if kind in info.kinds]


def build_model(name: str, kind: str, input_shape: tuple[int, ...], num_classes: int) -> SplitModel:
    """Build ``name`` (or the default for ``kind`` when ``name == "auto"``)."""
    name = DEFAULT_MODEL[kind] if name == "auto" else name
    if name not in MODELS:
        raise UnknownNameError("model", name, MODELS)
    info = MODELS[name]
    if kind not in info.kinds:
        raise ConfigError(f"model {name!r} does not take {kind} inputs; use one of: "
                          + ", ".join(models_for(kind)))
    return info.build(input_shape, num_classes)
