"""torchvision backbones (ResNet-18/50, MobileNetV3-Small, EfficientNet-B0) as :class:`SplitModel`\\ s.

Each network is cut into ``features``, an ``nn.Sequential`` of five stages
(one per output stride: /4, /4, /8, /16, /32 for ResNets, where the first is
the stem; /2, /4, /8, /16, /32 for the others), the last one ending in global
average pooling (and, for MobileNetV3, torchvision's pretrained 576→1024
pre-logits layer), and a new ``head`` (dropout as in torchvision's classifier,
then a linear layer to the task's classes). ``freeze_depth`` counts these
stages, so ``finetune`` with ``freeze_depth=-1`` trains the head alone: a
linear probe on ImageNet features.

Inputs: the first stage starts with :class:`ImageNetInput`, which repeats a
grayscale channel to RGB, upsamples images whose shorter side is under 32
pixels (these networks downsample by 32), and applies ImageNet's mean/std
normalisation, so domains stay in [0, 1] like every other model's input. On
CUDA the model asks for channels_last memory (see ``channels_last``); AMP is
the loop's.

Weights: ``resnet18`` etc. load torchvision's default ImageNet weights from the
torch hub cache (``$TORCH_HOME/hub/checkpoints``), downloading them when
missing (progress: :func:`tlcore.download.download_progress`, SHA-256 prefix
checked). Offline with no cached file, :class:`~tlcore.errors.WeightsUnavailableError`
says where to put the file and that ``resnet18_random_init`` (and so on) is
the explicit choice of random initialisation, which the run record then
states through its model name. There is never a silent fallback.
"""
from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .download import NETWORK_ERRORS, ChecksumMismatch, ProgressCallback, fetch_url
from .errors import ConfigError, WeightsUnavailableError
from .models import BACKBONES, RANDOM_INIT_SUFFIX, SplitModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_INPUT_SIDE = 32
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch hub: the name carries the SHA-256's first hex digits


class ImageNetInput(nn.Module):
    """[0, 1] images (N, 1 or 3, H, W) → ImageNet-normalised RGB of at least ``min_side`` pixels."""

    def __init__(self, min_side: int = MIN_INPUT_SIDE):
        super().__init__()
        self.min_side = min_side
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        height, width = x.shape[-2:]
        if min(height, width) < self.min_side:
            factor = self.min_side / min(height, width)
            x = F.interpolate(x, size=(round(height * factor), round(width * factor)), mode="bilinear",
                              align_corners=False)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if x.is_cuda:  # the model's weights are channels_last on CUDA (see Trainer)
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def extra_repr(self) -> str:
        return f"min_side={self.min_side}, mean={IMAGENET_MEAN}, std={IMAGENET_STD}"


# --------------------------------------------------------------------------- architectures
Stages = tuple[list[nn.Module], int, float]


def _resnet_stages(model: nn.Module) -> Stages:
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    last = nn.Sequential(model.layer4, model.avgpool, nn.Flatten())
    return [stem, model.layer1, model.layer2, model.layer3, last], model.fc.in_features, 0.0


def _grouped(features: nn.Sequential, groups: list[list[int]]) -> list[nn.Module]:
    if sorted(i for group in groups for i in group) != list(range(len(features))):
        raise RuntimeError(f"stage grouping {groups} does not cover torchvision's {len(features)} feature modules")
    return [nn.Sequential(*(features[i] for i in group)) for group in groups]


def _mobilenet_v3_small_stages(model: nn.Module) -> Stages:
    # torchvision's features[0..12], grouped by output stride: /2, /4, /8, /16, /32.
    stages = _grouped(model.features, [[0], [1], [2, 3], [4, 5, 6, 7, 8], [9, 10, 11, 12]])
    pre_logits = model.classifier[0]  # Linear(576, 1024), pretrained, followed by Hardswish
    stages[-1] = nn.Sequential(*stages[-1], model.avgpool, nn.Flatten(), pre_logits, model.classifier[1])
    return stages, pre_logits.out_features, model.classifier[2].p


def _efficientnet_b0_stages(model: nn.Module) -> Stages:
    # torchvision's features[0..8], grouped by output stride: /2, /4, /8, /16, /32.
    stages = _grouped(model.features, [[0, 1], [2], [3], [4, 5], [6, 7, 8]])
    stages[-1] = nn.Sequential(*stages[-1], model.avgpool, nn.Flatten())
    return stages, model.classifier[1].in_features, model.classifier[0].p


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str
    stages: Callable[[nn.Module], Stages]


_STAGES: dict[str, Callable[[nn.Module], Stages]] = {
    "resnet18": _resnet_stages,
    "resnet50": _resnet_stages,
    "mobilenet_v3_small": _mobilenet_v3_small_stages,
    "efficientnet_b0": _efficientnet_b0_stages,
}
# One per tlcore.models.BACKBONES entry (the registry); a backbone without its stage split fails here, at import.
ARCHITECTURES: dict[str, Architecture] = {name: Architecture(name, title, _STAGES[name])
                                          for name, title in BACKBONES.items()}


# --------------------------------------------------------------------------- weights
def weights_file(arch: str) -> tuple[Path, str, str]:
    """Where torch hub caches ``arch``'s default ImageNet weights, their URL and their torchvision name."""
    import torchvision.models as tv_models

    weights = tv_models.get_model_weights(arch).DEFAULT
    filename = weights.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename, weights.url, str(weights)


_verified: dict[tuple[str, int, int], bool] = {}
_verify_lock = threading.Lock()


def _sha256_matches(path: Path) -> bool:
    """Whether ``path``'s SHA-256 starts with the digits in its name (remembered per size and time)."""
    match = HASH_IN_NAME.search(path.name)
    if match is None:
        return True
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _verify_lock:
        if key in _verified:
            return _verified[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    ok = digest.hexdigest().startswith(match.group(1))
    with _verify_lock:
        _verified[key] = ok
    return ok


def load_imagenet_weights(arch: str, progress: ProgressCallback | None = None) -> tuple[dict, str]:
    """torchvision's default ImageNet state dict for ``arch``, and a sentence saying which and from where.

    Reads the torch hub cache; downloads into it when the file is missing.
    Raises :class:`WeightsUnavailableError` offline, or for a corrupt file.
    """
    path, url, weights_name = weights_file(arch)
    random_choice = f"{arch}{RANDOM_INIT_SUFFIX}"
    if not path.is_file():
        try:
            hash_match = HASH_IN_NAME.search(path.name)
            fetch_url(url, path, progress=progress, sha256_prefix=hash_match.group(1) if hash_match else None)
        except ChecksumMismatch as exc:
            raise WeightsUnavailableError(f"ImageNet weights for {arch}: the download was corrupt ({exc}); try again, "
                                          f"or choose model {random_choice} for random initialisation") from None
        except NETWORK_ERRORS as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise WeightsUnavailableError(
                f"ImageNet weights for {arch} ({weights_name}) are not in the torch cache and could not be "
                f"downloaded ({reason}).\n"
                f"  Put the file {path.name} in {path.parent} (from {url}; TORCH_HOME moves the cache),\n"
                f"  or choose model {random_choice} to train from random initialisation (the run record then says so)."
            ) from None
    if not _sha256_matches(path):
        raise WeightsUnavailableError(f"{path} does not match the SHA-256 in its name (corrupt or incomplete): delete "
                                      f"it so it is downloaded again, or choose model {random_choice}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise WeightsUnavailableError(f"{path} could not be read ({type(exc).__name__}: {exc}): delete it so it is "
                                      f"downloaded again, or choose model {random_choice}") from None
    return state, f"ImageNet weights {weights_name} from {path}"


# --------------------------------------------------------------------------- building
def build_backbone(arch: str, input_shape: tuple[int, ...], num_classes: int, pretrained: bool = True,
                   progress: ProgressCallback | None = None) -> SplitModel:
    """Build ``arch`` as a :class:`SplitModel` for images of ``input_shape`` (C, H, W) and ``num_classes``.

    ``pretrained=False`` keeps torchvision's random initialisation (seeded by
    the caller through torch's global RNG, as the Trainer does).
    The model carries ``weights_note`` (a sentence for the run record),
    ``input_notes`` and ``channels_last = True``.
    """
    import torchvision.models as tv_models

    if arch not in ARCHITECTURES:
        from .errors import UnknownNameError

        raise UnknownNameError("backbone", arch, ARCHITECTURES)
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise ConfigError(f"{arch} takes grayscale or RGB images (1 or 3 channels), got input shape {input_shape}")
    network = getattr(tv_models, arch)(weights=None)
    if pretrained:
        state, weights_note = load_imagenet_weights(arch, progress)
        try:
            network.load_state_dict(state)
        except RuntimeError as exc:
            raise WeightsUnavailableError(f"the cached weights do not fit torchvision's {arch}: {exc}") from None
    else:
        weights_note = f"random initialisation (torchvision's default init), no pretrained weights: {arch}" \
                       f"{RANDOM_INIT_SUFFIX} was chosen"
    stages, feature_dim, dropout = ARCHITECTURES[arch].stages(network)
    adapter = ImageNetInput()
    stages[0] = nn.Sequential(adapter, *stages[0]) if isinstance(stages[0], nn.Sequential) \
        else nn.Sequential(adapter, stages[0])
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes)) if dropout \
        else nn.Linear(feature_dim, num_classes)
    name = arch if pretrained else f"{arch}{RANDOM_INIT_SUFFIX}"
    model = SplitModel(nn.Sequential(*stages), head, feature_dim, name)
    channels, height, width = input_shape
    notes = []
    if channels == 1:
        notes.append("grayscale repeated to 3 channels")
    if min(height, width) < MIN_INPUT_SIDE:
        factor = MIN_INPUT_SIDE / min(height, width)
        notes.append(f"upsampled from {height}×{width} to {round(height * factor)}×{round(width * factor)} (bilinear)")
    notes.append("ImageNet mean/std normalisation")
    model.weights_note = weights_note
    model.input_notes = f"{ARCHITECTURES[arch].title} input, inside the model: " + "; ".join(notes)
    model.channels_last = True
    return model

