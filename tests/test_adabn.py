"""AdaBN: batch-norm statistics re-estimated on the target, against plain references."""
import pytest
import torch
from torch import nn

from tlcore import events as ev
from tlcore.data.domain import as_float
from tlcore.errors import ConfigError
from tlcore.models import build_model
from tlcore.strategies.adabn import batch_norm_layers, reestimate_batch_norm
from tlcore.train import Trainer

from helpers import fast_config


def _chunks(x, size):
    return lambda: (x[i:i + size] for i in range(0, len(x), size))


def _plain_stats(values):
    """Per-channel mean and unbiased variance of (rows, channels) values, by a plain loop."""
    rows, channels = values.shape
    means = [sum(values[i, c].item() for i in range(rows)) / rows for c in range(channels)]
    variances = [sum((values[i, c].item() - means[c]) ** 2 for i in range(rows)) / (rows - 1) for c in range(channels)]
    return torch.tensor(means, dtype=torch.float64), torch.tensor(variances, dtype=torch.float64)


def test_mlp_bn_statistics_equal_the_target_features_statistics_layer_by_layer():
    torch.manual_seed(0)
    model = build_model("mlp_bn", "vector", (2,), 2)
    x = torch.randn(203, 2) * 3 + 5  # a shifted "target", far from the initial statistics (0, 1)
    assert reestimate_batch_norm(model, _chunks(x, 64)) == 2
    bn1, bn2 = batch_norm_layers(model)
    linear1, linear2 = model.features[0][0], model.features[1][0]
    with torch.no_grad():
        h1 = linear1(x)
        mean1, var1 = _plain_stats(h1)
        torch.testing.assert_close(bn1.running_mean.double(), mean1, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn1.running_var.double(), var1, rtol=1e-5, atol=1e-5)
        # The second layer's input is the first layer's output normalised with its new statistics.
        normalised = (h1 - mean1.float()) / torch.sqrt(var1.float() + bn1.eps) * bn1.weight + bn1.bias
        mean2, var2 = _plain_stats(linear2(torch.relu(normalised)))
        torch.testing.assert_close(bn2.running_mean.double(), mean2, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn2.running_var.double(), var2, rtol=1e-4, atol=1e-5)
    assert model.training  # left in the mode it was in


def test_conv_statistics_pool_examples_and_positions_and_ignore_chunking():
    torch.manual_seed(0)
    model = build_model("lenet_bn", "image", (1, 16, 16), 10)
    assert len(batch_norm_layers(model)) == 3  # two convolutions and the fc layer
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    x = torch.rand(37, 1, 16, 16) * 2 - 0.3
    reestimate_batch_norm(model, _chunks(x, 37))
    whole = [(b.running_mean.clone(), b.running_var.clone()) for b in batch_norm_layers(model)]
    reestimate_batch_norm(model, _chunks(x, 5))
    for (mean, var), layer in zip(whole, batch_norm_layers(model)):
        torch.testing.assert_close(layer.running_mean, mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(layer.running_var, var, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        conv = model.features[0][0](x)  # (37, 16, 12, 12): every example and position is a row
        mean, var = _plain_stats(conv.permute(0, 2, 3, 1).reshape(-1, conv.shape[1])[:, :3])
    torch.testing.assert_close(batch_norm_layers(model)[0].running_mean[:3].double(), mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batch_norm_layers(model)[0].running_var[:3].double(), var, rtol=1e-4, atol=1e-5)
    # No weight changes.
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_a_run_ends_with_the_target_statistics_and_source_only_keeps_the_source_ones():
    trainer = Trainer(fast_config(strategy="adabn", target="moons:rotate=60"))
    events = list(trainer.run())
    assert trainer.model.name == "mlp_bn"  # "auto" picks a model with batch norm
    assert events[-1].extras["bn_layers_adapted"] == 2.0
    target = as_float(trainer.pair.target.x_train)
    with torch.no_grad():
        expected = trainer.model.features[0][0](target).double().mean(0)
    torch.testing.assert_close(batch_norm_layers(trainer.model)[0].running_mean.double(), expected,
                               rtol=1e-4, atol=1e-5)
    # The same training without the re-estimation (source_only, same seed and model) ends elsewhere.
    baseline = Trainer(fast_config(strategy="source_only", target="moons:rotate=60", model="mlp_bn"))
    list(baseline.run())
    assert not torch.allclose(batch_norm_layers(baseline.model)[0].running_mean.double(), expected, atol=1e-3)


def test_adabn_refuses_a_model_without_batch_norm():
    with pytest.raises(ConfigError, match="has no batch-norm layer.*mlp_bn"):
        Trainer(fast_config(strategy="adabn", model="mlp"))


def test_a_stopped_run_is_not_adapted():
    class Stop:
        def is_set(self):
            return True
    events = list(Trainer(fast_config(strategy="adabn")).run(Stop()))
    assert events[-1].status == "stopped" and "bn_layers_adapted" not in events[-1].extras
