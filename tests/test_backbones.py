"""torchvision backbones: per-stage split, freezing, shapes, weights from the cache, offline errors.

Nothing is downloaded: ``TORCH_HOME`` points at an empty temporary directory
and ``urllib.request.urlopen`` fails at once (or serves a local file).
"""
from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request

import pytest
import torch

from tlcore import backbones
from tlcore.backbones import ARCHITECTURES, ImageNetInput, build_backbone
from tlcore.errors import WeightsUnavailableError
from tlcore.models import MODELS, build_model


@pytest.fixture(autouse=True)
def offline_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    calls = []

    def refuse(request, *args, **kwargs):
        calls.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution (test: offline)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def total(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- structure
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_five_stages_each_halving_the_resolution_except_the_resnet_stem_pair(arch):
    torch.manual_seed(0)
    model = build_backbone(arch, (3, 64, 64), num_classes=7, pretrained=False).eval()
    assert model.name == f"{arch}_random_init" and model.num_blocks == 5
    assert "random initialisation" in model.weights_note
    x = torch.rand(1, 3, 64, 64)
    sides = []
    with torch.no_grad():
        for stage in model.features[:-1]:
            x = stage(x)
            sides.append(x.shape[-1])
        features = model.features[-1](x)
    expected = [16, 16, 8, 4] if arch.startswith("resnet") else [32, 16, 8, 4]  # then /32, pooled
    assert sides == expected
    assert features.shape == (1, model.feature_dim)
    assert model.head(features).shape == (1, 7)
    # every parameter of torchvision's network is in a stage or the new head, none twice
    assert len({id(p) for p in model.parameters()}) == len(list(model.parameters()))


def test_registered_under_their_names_and_with_explicit_random_init():
    from tlcore.models import BACKBONES, models_for
    assert set(ARCHITECTURES) == set(BACKBONES)  # one registry: tlcore.models.BACKBONES
    for arch in ARCHITECTURES:
        assert arch in MODELS and f"{arch}_random_init" in MODELS
        assert MODELS[arch].kinds == frozenset({"image"})
        assert MODELS[arch].pretrained and not MODELS[f"{arch}_random_init"].pretrained
        assert MODELS[arch].architecture == MODELS[f"{arch}_random_init"].architecture == arch
    assert models_for("vector") == ["mlp", "mlp_bn"]
    image = models_for("image")
    assert image[:4] == ["lenet", "lenet_wide", "lenet_bn", "resnet18"] and len(image) == 3 + 2 * len(BACKBONES)
    assert [n for n, m in MODELS.items() if m.pretrained] == list(BACKBONES)


def test_resnet18_forward_on_small_grayscale_images():
    torch.manual_seed(0)
    model = build_model("resnet18_random_init", "image", (1, 28, 28), 10).eval()
    with torch.no_grad():
        features, logits = model.forward_with_features(torch.rand(4, 1, 28, 28))
    assert features.shape == (4, 512) and logits.shape == (4, 10)
    assert "grayscale repeated to 3 channels" in model.input_notes and "28×28 to 32×32" in model.input_notes


def test_imagenet_input_normalises_and_repeats_gray():
    adapter = ImageNetInput()
    gray = torch.full((1, 1, 40, 40), 0.5)
    out = adapter(gray)
    assert out.shape == (1, 3, 40, 40)
    expected = (0.5 - torch.tensor(backbones.IMAGENET_MEAN)) / torch.tensor(backbones.IMAGENET_STD)
    assert torch.allclose(out[0, :, 0, 0], expected)
    assert adapter(torch.rand(2, 3, 16, 24)).shape == (2, 3, 32, 48)


@pytest.mark.parametrize("depth, frozen_stages", [(-1, 5), (0, 0), (2, 2), (5, 5)])
def test_freeze_depth_leaves_exactly_the_later_stages_and_the_head_trainable(depth, frozen_stages):
    model = build_backbone("resnet18", (3, 32, 32), 4, pretrained=False)
    model.freeze(depth)
    expected = total(model.head) + sum(total(stage) for stage in model.features[frozen_stages:])
    assert trainable(model) == expected
    for index, stage in enumerate(model.features):
        assert all(p.requires_grad == (index >= frozen_stages) for p in stage.parameters())
    model.train()
    assert all(not m.training for stage in model.features[:frozen_stages] for m in stage.modules())
    if depth == -1:
        assert trainable(model) == 512 * 4 + 4, "a linear probe: only the head's weights and biases"


def test_mobilenet_and_efficientnet_heads_keep_torchvision_dropout():
    mobile = build_backbone("mobilenet_v3_small", (3, 32, 32), 3, pretrained=False)
    assert mobile.feature_dim == 1024 and isinstance(mobile.head[0], torch.nn.Dropout)
    efficient = build_backbone("efficientnet_b0", (3, 32, 32), 3, pretrained=False)
    assert efficient.feature_dim == 1280 and efficient.head[0].p == 0.2


# --------------------------------------------------------------------------- weights
def test_missing_weights_offline_say_where_and_offer_random_init(tmp_path, offline_empty_cache):
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("resnet18", "image", (3, 32, 32), 10)
    message = str(info.value)
    assert offline_empty_cache, "a download was attempted (and failed at once)"
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "torch_home" / "hub" / "checkpoints") in message
    assert "resnet18_random_init" in message and "Temporary failure" in message


def _fake_weights(tmp_path, monkeypatch):
    """A resnet18 state dict saved under a hub-style name carrying its own SHA-256 prefix."""
    import torchvision.models as tv_models

    torch.manual_seed(1)
    state = tv_models.resnet18(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    content = buffer.getvalue()
    name = f"resnet18-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    path = tmp_path / "torch_home" / "hub" / "checkpoints" / name
    url = f"https://download.example/models/{name}"
    monkeypatch.setattr(backbones, "weights_file", lambda arch: (path, url, "ResNet18_Weights.IMAGENET1K_V1"))
    return state, content, path, url


def test_cached_weights_are_loaded_and_named_in_the_model(tmp_path, monkeypatch):
    state, content, path, _ = _fake_weights(tmp_path, monkeypatch)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    model = build_model("resnet18", "image", (3, 32, 32), 5)
    assert torch.equal(model.features[0][1].weight, state["conv1.weight"])  # [0] is the input adapter
    assert torch.equal(model.features[4][0][1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert model.name == "resnet18" and str(path) in model.weights_note
    path.write_bytes(content[:1000])
    with pytest.raises(WeightsUnavailableError, match="does not match the SHA-256"):
        build_model("resnet18", "image", (3, 32, 32), 5)


def test_missing_weights_download_with_progress_and_hash_check(tmp_path, monkeypatch):
    state, content, path, url = _fake_weights(tmp_path, monkeypatch)

    class Response(io.BytesIO):
        def __init__(self, body: bytes):
            super().__init__(body)
            self.headers = {"Content-Length": str(len(body))}  # a short body announced as long is a cut download

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, *a, **k: Response(content))
    reports = []
    model = build_backbone("resnet18", (3, 32, 32), 5, progress=reports.append)
    assert path.read_bytes() == content and reports[-1].finished and reports[-1].done_bytes == len(content)
    assert torch.equal(model.features[1][0].conv1.weight, state["layer1.0.conv1.weight"])

    path.unlink()
    monkeypatch.setattr(urllib.request, "urlopen", lambda request, *a, **k: Response(b"<html>proxy</html>"))
    with pytest.raises(WeightsUnavailableError, match="download was corrupt"):
        build_backbone("resnet18", (3, 32, 32), 5)
    assert not path.exists() and not list(path.parent.glob("*.part"))


# --------------------------------------------------------------------------- in a run
def test_a_linear_probe_run_records_the_random_init_choice(tmp_path):
    from tlcore.api import run_experiment
    from tlcore.config import RunConfig
    from tlcore.runs import RunStore

    config = RunConfig(source="digits:limit=4", target="digits:invert,limit=4", strategy="finetune",
                       params={"freeze_depth": -1}, target_labels=1, model="resnet18_random_init", epochs=1,
                       batch_size=8, device="cpu", threads=1, log_every=2)
    store = RunStore(tmp_path / "runs.sqlite")
    outcome = run_experiment(config, store=store, with_baseline=False)
    record = store.get_run(outcome.run_id)
    assert record.config["model"] == "resnet18_random_init"
    assert "random initialisation" in record.metrics["model_weights"]
    assert any(line.startswith("model: ResNet-18 input") for line in record.metrics["preprocessing"])


def test_importing_the_engine_does_not_import_torchvision():
    import subprocess
    import sys

    code = ("import sys, tlcore, tlcore.data, tlcore.models, tlcore.train, tlcore.api, tlcore.cli; "
            "assert 'torchvision' not in sys.modules, 'torchvision imported eagerly'; "
            "assert 'PIL.Image' not in sys.modules, 'PIL imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
