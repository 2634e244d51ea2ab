"""AdaBN: train on the source, then re-estimate every batch-norm layer's statistics on the
target (Li, Wang, Shi, Liu, Hou. "Revisiting Batch Normalization For Practical Domain
Adaptation", ICLR-W 2017 / arXiv 1603.04779, 2016)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .base import Strategy, cross_entropy_phase, supervised_streams


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics, in registration order
    (which is forward order for the sequential models of :mod:`tlcore.models`)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


class _Reached(Exception):
    """Raised by the hook once the layer being estimated has seen its input: the rest of the
    forward pass is not needed."""


@torch.no_grad()
def reestimate_batch_norm(model: nn.Module, inputs: Callable[[], Iterable[torch.Tensor]]) -> int:
    r"""Set every batch-norm layer's running mean and variance to the exact statistics of its
    input over all of ``inputs()`` (AdaBN: the target domain's population statistics).

    Layers are estimated one at a time in forward order, with the model in eval mode, so
    that each layer sees its input as it will be at test time: normalised by the layers
    before it with their *new* statistics. For layer :math:`\ell` and channel :math:`c`,

    .. math:: \mu_c = \frac{1}{n} \sum_{i} x_{ic}, \qquad
              \sigma^2_c = \frac{1}{n - 1} \sum_{i} (x_{ic} - \mu_c)^2

    over every example and spatial position :math:`i` (``n`` of them), the unbiased variance
    that PyTorch keeps in ``running_var``. Chunks are merged exactly (Chan et al.'s pairwise
    update, in float64), so the result does not depend on how ``inputs`` is chunked. This is
    the limit of PyTorch's cumulative average (``momentum=None``) without its dependence on
    per-batch statistics. No gradient is taken and no weight changes.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(x)``; its batch-norm layers are updated in place.
    inputs : callable
        Returns a fresh iterator over input chunks each time (one pass per layer).

    Returns
    -------
    int
        The number of layers re-estimated.
    """
    layers = batch_norm_layers(model)
    was_training = model.training
    model.eval()
    try:
        for layer in layers:
            count, mean, m2 = 0, None, None

            def capture(module, args):
                nonlocal count, mean, m2
                x = args[0].detach().transpose(0, 1).reshape(args[0].shape[1], -1).double()  # (channels, rows)
                n_b = x.shape[1]
                mean_b = x.mean(1)
                m2_b = ((x - mean_b[:, None]) ** 2).sum(1)
                if count == 0:
                    count, mean, m2 = n_b, mean_b, m2_b
                else:
                    n = count + n_b
                    delta = mean_b - mean
                    mean = mean + delta * (n_b / n)
                    m2 = m2 + m2_b + delta ** 2 * (count * n_b / n)
                    count = n
                raise _Reached

            handle = layer.register_forward_pre_hook(capture)
            try:
                for x in inputs():
                    try:
                        model(x)
                    except _Reached:
                        pass
            finally:
                handle.remove()
            if count < 2:
                raise ValueError(f"re-estimating batch norm needs at least 2 values per channel, got {count}")
            layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
            layer.running_var.copy_((m2 / (count - 1)).to(layer.running_var.dtype))
    finally:
        model.train(was_training)
    return len(layers)


class AdaBN(Strategy):
    name = "adabn"
    summary = ("AdaBN: train on the source, then re-estimate every batch-norm layer's mean and variance on the "
               "unlabelled target; no weight changes (Li et al., 2016).")
    # ``model="auto"``: for points, the MLP with batch norm; for images the default lenet, which has
    # batch norm after each convolution, so that adabn and source_only compare on the same model
    # (lenet_bn, normalised at the fc layer too, is there to choose).
    auto_models = {"vector": "mlp_bn"}

    def phases(self, ctx):
        if not batch_norm_layers(ctx.model):
            raise ConfigError(f"adabn re-estimates batch-norm statistics, and model {ctx.model.name!r} has no "
                              "batch-norm layer: use model 'auto' (mlp_bn for 2-D data, lenet for images) "
                              "or another model with batch norm (mlp_bn, lenet, lenet_wide, lenet_bn, the resnets)")
        return [cross_entropy_phase("train", supervised_streams(ctx))]

    def finish(self, ctx):
        self.layers_adapted = reestimate_batch_norm(ctx.model, lambda: ctx.inputs("target"))

    def eval_extras(self, ctx, source_features, target_features):
        """How many batch-norm layers hold target statistics (in the final evaluation only)."""
        layers = getattr(self, "layers_adapted", None)
        return {} if layers is None else {"bn_layers_adapted": float(layers)}
