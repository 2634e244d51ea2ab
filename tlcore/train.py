"""The one training loop.

:class:`Trainer` builds the pair, the model and the strategy from a
:class:`~tlcore.config.RunConfig`; :meth:`Trainer.run` yields events
(:mod:`tlcore.events`). Every strategy goes through this loop: a strategy
supplies loss terms and hooks, never a loop of its own.

Speed habits (airbench-style): the datasets live on the device and are batched
by indexing; loss terms are summed on the device and read back once every
``log_every`` steps (one sync per interval); NaN detection records the first
bad step on the device without a per-step sync.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import torch
from torch import nn

from . import events as ev
from .config import RunConfig, from_mapping
from .data.domain import DomainPair, as_float
from .device import auto_threads, describe_device, select_device
from .errors import ConfigError, NonFiniteLossError, UnknownNameError
from .models import SplitModel, build_model
from .strategies import STRATEGIES
from .strategies.base import Phase, Stream, Strategy

EVAL_MMD_POINTS = 128
_init_lock = threading.Lock()  # model init draws from torch's global RNG


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class StreamData:
    """A resident stream: inputs (float32 or uint8) and labels on the device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


class _Sampler:
    """Epoch-style sampling of one stream: a seeded permutation consumed in slices."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device):
        self.n, self.batch_size, self.gen, self.device = n, min(batch_size, n), generator, device
        self._perm, self._pos = None, n

    def next(self) -> torch.Tensor:
        if self._pos + self.batch_size > self.n:
            self._perm = torch.randperm(self.n, generator=self.gen).to(self.device, non_blocking=True)
            self._pos = 0
        idx = self._perm[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


@dataclass
class Context:
    """What a strategy can see: the pair, the model, resident data and the schedule."""

    config: RunConfig
    params: Any
    pair: DomainPair
    model: SplitModel
    device: torch.device
    data: dict[str, StreamData]
    modules: nn.ModuleDict = field(default_factory=nn.ModuleDict)
    step: int = 0
    total_steps: int = 1
    steps_per_epoch: int = 1

    @property
    def progress(self) -> float:
        """Fraction of the run's steps done, in [0, 1] (drives ramps such as DANN's)."""
        return min(1.0, self.step / max(1, self.total_steps))


def resolve_params(strategy: str, params: dict | None) -> Any:
    """The strategy's typed, validated hyperparameters."""
    if strategy not in STRATEGIES:
        raise UnknownNameError("strategy", strategy, STRATEGIES)
    return from_mapping(STRATEGIES[strategy].Config, params)


def resolved_config(config: RunConfig) -> RunConfig:
    """``config`` with every strategy hyperparameter filled in (what run records store)."""
    import dataclasses
    params = resolve_params(config.strategy, config.params)
    return config.replace(params=dataclasses.asdict(params))


class Trainer:
    """Builds a run from its config; :meth:`run` trains and yields events.

    After (or during) :meth:`run`, ``model``, ``strategy``, ``pair`` and
    :meth:`artifacts` hold what the run produced.
    """

    def __init__(self, config: RunConfig, pair: DomainPair | None = None):
        from .data import make_pair

        self.config = resolved_config(config)
        cls = STRATEGIES[config.strategy]
        self.params = resolve_params(config.strategy, config.params)
        self.strategy: Strategy = cls(self.params)
        if cls.needs_target_labels and config.target_labels < 1:
            raise ConfigError(f"strategy {cls.name!r} trains on labelled target examples: "
                              "set target_labels (--target-labels) to 1 or more")
        self.device = select_device(config.device)
        self.pair = pair if pair is not None else make_pair(
            config.source, config.target, seed=config.seed, target_labels=config.target_labels,
            data_dir=config.data_dir or None)
        with _init_lock, torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = build_model(config.model, self.pair.kind, self.pair.input_shape,
                                     len(self.pair.class_names)).to(self.device)
            if self.device.type == "cuda" and getattr(self.model, "channels_last", False):
                # torchvision backbones: NHWC convolutions run faster under AMP on tensor cores;
                # their input adapter makes each batch channels_last too.
                self.model = self.model.to(memory_format=torch.channels_last)
            self.ctx = Context(config=self.config, params=self.params, pair=self.pair, model=self.model,
                               device=self.device, data=self._resident_data())
            self.ctx.modules = self.strategy.extra_modules(self.ctx).to(self.device)
        n_max = max(len(self.pair.source.y_train), len(self.pair.target.y_train))
        self.ctx.steps_per_epoch = math.ceil(n_max / config.batch_size)
        self.ctx.total_steps = config.epochs * self.ctx.steps_per_epoch
        self.phases: list[Phase] = self.strategy.phases(self.ctx)
        if abs(sum(p.share for p in self.phases) - 1.0) > 1e-6:
            raise ValueError(f"{cls.name}: phase shares must sum to 1")
        self.threads = config.threads or auto_threads(self.device)

    # --- data ---------------------------------------------------------------------
    def _resident_data(self) -> dict[str, StreamData]:
        p, dev = self.pair, self.device
        s, t = p.source, p.target
        lab = p.target_labelled
        return {
            "source": StreamData(s.x_train.to(dev), s.y_train.to(dev)),
            "target": StreamData(t.x_train.to(dev), t.y_train.to(dev)),
            "target_labelled": StreamData(t.x_train[lab].to(dev), t.y_train[lab].to(dev)),
            "target_all": StreamData(t.x_train.to(dev), t.y_train.to(dev)),
            "source_test": StreamData(s.x_test.to(dev), s.y_test.to(dev)),
            "target_test": StreamData(t.x_test.to(dev), t.y_test.to(dev)),
        }

    def artifacts(self) -> dict[str, Any]:
        return self.strategy.artifacts()

    # --- evaluation -----------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and predicted labels for resident inputs ``x`` (eval mode)."""
        was_training = self.model.training
        self.model.eval()
        feats, preds = [], []
        with self._autocast():
            for i in range(0, len(x), batch_size):
                f, logits = self.model.forward_with_features(as_float(x[i:i + batch_size]))
                feats.append(f.float())
                preds.append(logits.argmax(1))
        self.model.train(was_training)
        return torch.cat(feats), torch.cat(preds)

    def evaluate(self) -> tuple[float, float, dict[str, float], torch.Tensor]:
        """Source and target test accuracy, extras, and the target predictions."""
        src, tgt = self.ctx.data["source_test"], self.ctx.data["target_test"]
        fs, ps = self.predict(src.x)
        ft, pt = self.predict(tgt.x)
        accs = torch.stack([(ps == src.y).float().mean(), (pt == tgt.y).float().mean()]).tolist()
        extras = {"feature_mmd2": _eval_feature_mmd2(fs, ft)}
        extras.update(self.strategy.eval_extras(self.ctx, fs, ft))
        return accs[0], accs[1], extras, pt

    # --- the loop -------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda" and self.config.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def run(self, stop: StopFlag | None = None) -> Iterator[ev.Event]:
        """Train, yielding events. Stops cleanly between steps once ``stop.is_set()``."""
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield from self._run(stop)
        finally:
            torch.set_num_threads(previous_threads)

    def _run(self, stop: StopFlag | None) -> Iterator[ev.Event]:
        cfg, ctx, dev = self.config, self.ctx, self.device
        t0 = time.perf_counter()
        yield ev.RunStarted(total_steps=ctx.total_steps, phases=tuple(p.name for p in self.phases),
                            device=describe_device(dev), threads=self.threads,
                            num_source_train=len(ctx.data["source"]), num_target_train=len(ctx.data["target"]),
                            num_target_labelled=len(ctx.data["target_labelled"]))
        self.strategy.prepare(ctx)
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        eval_every = max(1, ctx.steps_per_epoch // cfg.evals_per_epoch)
        use_scaler = dev.type == "cuda" and cfg.amp and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        stopped = False
        step = 0
        budgets = _split_steps(ctx.total_steps, [p.share for p in self.phases])
        phase = self.phases[0]
        for phase, phase_steps in zip(self.phases, budgets):
            if phase.on_start is not None:
                phase.on_start(ctx)
            params = [p for p in list(self.model.parameters()) + list(ctx.modules.parameters()) if p.requires_grad]
            base_lr = cfg.lr * phase.lr_scale
            opt = torch.optim.Adam(params, lr=base_lr, weight_decay=cfg.weight_decay)
            samplers = {n: _Sampler(len(ctx.data[n]), cfg.batch_size, gen, dev) for n in phase.streams}
            for n, s in samplers.items():
                if s.n == 0:
                    raise ConfigError(f"strategy {self.strategy.name!r} needs the {n!r} stream, which is empty")
            self.model.train()
            ctx.modules.train()
            log = _LossLog(cfg.log_every, dev)
            last_log_t, examples = time.perf_counter(), 0
            for _ in range(phase_steps):
                if stop is not None and stop.is_set():
                    stopped = True
                    break
                ctx.step = step
                batch = {}
                for n, sampler in samplers.items():
                    idx = sampler.next()
                    d = ctx.data[n]
                    batch[n] = Stream(as_float(d.x[idx]), d.y[idx], idx)
                    examples += len(idx)
                if cfg.lr_schedule == "anneal":
                    for group in opt.param_groups:
                        group["lr"] = base_lr * annealed_lr_factor(ctx.progress)
                with self._autocast():
                    terms = phase.losses(batch, ctx)
                weights = self.strategy.weights(ctx)
                total = _weighted_sum(terms, weights)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(total).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    total.backward()
                    opt.step()
                log.record(step, terms, total)  # stays on the device: no sync here
                step += 1
                if step % cfg.log_every == 0 or step == ctx.total_steps:
                    yield self._step_event(log, step, phase, weights, terms, t0, last_log_t, examples)
                    last_log_t, examples = time.perf_counter(), 0
                if step % eval_every == 0 and step != ctx.total_steps:
                    s_acc, t_acc, extras, _ = self.evaluate()
                    yield ev.EvalEvent(step=step, total_steps=ctx.total_steps, phase=phase.name,
                                       source_accuracy=s_acc, target_accuracy=t_acc, extras=extras,
                                       elapsed_s=time.perf_counter() - t0)
            if log.rows:  # a phase that ended (or stopped) between two log points
                yield self._step_event(log, step, phase, weights, terms, t0, last_log_t, examples)
            if stopped:
                break
        ctx.step = step
        s_acc, t_acc, extras, preds = self.evaluate()
        yield ev.EvalEvent(step=step, total_steps=ctx.total_steps, phase=phase.name, source_accuracy=s_acc,
                           target_accuracy=t_acc, extras=extras, elapsed_s=time.perf_counter() - t0)
        from .metrics import per_class_accuracy
        per_class = per_class_accuracy(preds, ctx.data["target_test"].y, len(self.pair.class_names))
        yield ev.ResultEvent(status="stopped" if stopped else "done", steps=step, source_accuracy=s_acc,
                             target_accuracy=t_acc, target_per_class_accuracy=tuple(per_class),
                             elapsed_s=time.perf_counter() - t0, extras=extras)


    def _step_event(self, log: "_LossLog", step: int, phase: Phase, weights: dict, terms: dict,
                    t0: float, last_log_t: float, examples: int) -> ev.StepEvent:
        means = log.read()  # the one sync per interval; raises at the first non-finite step
        now = time.perf_counter()
        return ev.StepEvent(step=step, total_steps=self.ctx.total_steps, phase=phase.name,
                            epoch=step / self.ctx.steps_per_epoch, losses=means,
                            weights={k: float(weights.get(k, 1.0)) for k in terms},
                            extras=self.strategy.step_extras(self.ctx), elapsed_s=now - t0,
                            examples_per_s=examples / max(now - last_log_t, 1e-9))


def _eval_feature_mmd2(fs: torch.Tensor, ft: torch.Tensor) -> float:
    """MMD² between held-out source and target features for the live "gap over time" curve.

    A fixed subsample (the first EVAL_MMD_POINTS rows of each test split) and a
    bandwidth from the median of a smaller subsample keep this at about a
    millisecond, so it can run at every evaluation; Inspect computes the full
    figures with a permutation test.
    """
    from .losses import gaussian_bandwidths, median_sq_distance, mmd2_unbiased
    fs, ft = fs[:EVAL_MMD_POINTS], ft[:EVAL_MMD_POINTS]
    sigma2 = gaussian_bandwidths(median_sq_distance(fs[:48], ft[:48]))
    return float(mmd2_unbiased(fs, ft, sigma2))


def _weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum_k w_k * term_k, without extra ops for weights of 1 (each op costs ~10 µs on a CPU)."""
    total = None
    for k, v in terms.items():
        w = weights.get(k, 1.0)
        v = v.float() if w == 1.0 else w * v.float()
        total = v if total is None else total + v
    return total


class _LossLog:
    """Loss terms of the last few steps, kept on the device in one buffer.

    Each step writes one row (the raw terms and the weighted total); reading
    the buffer once per interval gives the means and, if a value went NaN or
    infinite, the exact step where it first did, with no per-step sync.
    """

    def __init__(self, capacity: int, device: torch.device):
        self.capacity, self.device = capacity, device
        self.names: list[str] | None = None
        self.buffer: torch.Tensor | None = None
        self.first_step, self.rows = 0, 0

    def record(self, step: int, terms: dict[str, torch.Tensor], total: torch.Tensor) -> None:
        if self.buffer is None:
            self.names = list(terms) + ["total"]
            self.buffer = torch.empty(self.capacity, len(self.names), device=self.device)
        if self.rows == 0:
            self.first_step = step
        self.buffer[self.rows] = torch.stack([v.detach().float() for v in terms.values()] + [total.detach()])
        self.rows += 1

    def read(self) -> dict[str, float]:
        rows = self.buffer[: self.rows].tolist()
        for i, row in enumerate(rows):
            if not all(math.isfinite(v) for v in row):
                raise NonFiniteLossError(self.first_step + i, dict(zip(self.names, row)))
        means = {k: sum(r[j] for r in rows) / len(rows) for j, k in enumerate(self.names)}
        self.rows = 0
        return means


def annealed_lr_factor(progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """DANN's learning-rate annealing 1 / (1 + alpha p)^beta over progress p in [0, 1]
    (Ganin et al., JMLR 2016, section 5.2.2)."""
    return 1.0 / (1.0 + alpha * progress) ** beta


def _split_steps(total: int, shares: list[float]) -> list[int]:
    """Split ``total`` steps by ``shares``; the last phase takes the rounding remainder."""
    out = [int(round(total * s)) for s in shares[:-1]]
    return out + [total - sum(out)]


def warm_up() -> None:
    """Pay torch's one-time costs (the optimiser's lazy import of torch._dynamo, which
    was measured at several seconds on a cold 2-core machine, and the first kernels)
    so that the first real run shows its first point at once. The app calls this in a
    background thread at start-up. It also imports scikit-learn (the digits data and the
    logistic domain classifiers use it), which takes seconds on a cold start."""
    import sklearn.datasets  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    model = nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.zeros(1, 2)).sum().backward()
    opt.step()

