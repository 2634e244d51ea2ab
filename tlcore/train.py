"""The one training loop.

:class:`Trainer` builds the pair, the model and the strategy from a
:class:`~tlcore.config.RunConfig`; :meth:`Trainer.run` yields events
(:mod:`tlcore.events`). Every strategy goes through this loop: a strategy
supplies loss terms and hooks, never a loop of its own.

Speed habits (airbench-style): the datasets live on the device and are batched
by indexing; loss terms are summed on the device and read back once every
``log_every`` steps (one sync per interval); NaN detection records the first
bad step on the device without a per-step sync.

Resident or streamed data
-------------------------
The loop draws its batches from a *batch source*, of which there are two:
:class:`ResidentBatches` indexes tensors that live on the device (the default
for data that fits), and :class:`LoaderBatches` reads the same rows through a
``torch.utils.data.DataLoader`` whose worker processes decode them (image
folders too large to hold, ``RunConfig.data_mode``; see
:mod:`tlcore.data.limits`). Both take their row indices from one
:func:`index_plan`, with the same generator draws in the same order, so a
streamed run trains on exactly the batches a resident run trains on, and the
same seed gives the same history whichever source (and however many workers)
feeds the loop. Evaluation iterates a source's test splits in order.

On a CUDA GPU with ``batch_size_auto``, the batch size is first lowered to the
largest that fits in memory (:func:`tlcore.device.find_batch_size`, by real
forward and backward passes of the model); the resolved config records it.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import torch
import torch.nn.functional as F
import torch.utils.data
from torch import nn

from . import events as ev
from . import memory
from .config import RunConfig, from_mapping
from .data.domain import DomainPair, as_float
from .data.lazy import is_lazy, take_rows
from .device import BatchSizeFit, auto_threads, choose_batch_size, compute_precision, describe_device, select_device
from .errors import ConfigError, NonFiniteLossError, UnknownNameError
from .models import SplitModel, build_model
from .strategies import STRATEGIES
from .strategies.base import Context, Phase, Stream, StreamData, Strategy  # noqa: F401 (re-exported)

EVAL_MMD_POINTS = 128
EVAL_BATCH_SIZE = 1024         # at most this many rows per evaluation forward pass (fewer within
                               # tlcore.memory.EVAL_MEMORY_BUDGET for large inputs: Trainer.eval_rows)
STREAM_EVAL_BATCH_SIZE = 256   # rows per DataLoader item when evaluating streamed data (one worker decodes them)
_init_lock = threading.Lock()  # model init draws from torch's global RNG


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


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


def index_plan(sizes: dict[str, int], streams: tuple[str, ...], steps: int, batch_size: int,
               generator: torch.Generator, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """The rows each step of a phase draws from each of its ``streams``.

    Each stream is sampled epoch by epoch (a fresh seeded permutation when the
    current one runs out, consumed in slices of ``batch_size``); every
    permutation comes from the one ``generator``, in step order, streams in the
    phase's order. Both batch sources use this plan, which is what makes a
    streamed run draw the batches of a resident run. Indices are int64 on ``device``.
    """
    samplers = {n: _Sampler(sizes[n], batch_size, generator, device) for n in streams}
    for _ in range(steps):
        yield {n: sampler.next() for n, sampler in samplers.items()}


class ResidentBatches:
    """Batches by indexing tensors that live on the device (airbench-style: no DataLoader)."""

    mode = "resident"

    def __init__(self, data: dict[str, StreamData], device: torch.device, eval_rows: int = EVAL_BATCH_SIZE):
        self.data, self.device, self.eval_rows = data, device, eval_rows

    def steps(self, streams: tuple[str, ...], count: int, batch_size: int,
              generator: torch.Generator) -> Iterator[dict[str, Stream]]:
        """``count`` training batches of ``streams`` (see :func:`index_plan`)."""
        sizes = {n: len(self.data[n]) for n in streams}
        for rows in index_plan(sizes, streams, count, batch_size, generator, self.device):
            yield {n: Stream(as_float(self.data[n].x[idx]), self.data[n].y[idx], idx) for n, idx in rows.items()}

    def inputs(self, name: str) -> Iterator[torch.Tensor]:
        """Every input of stream ``name`` in row order, as float chunks on the device."""
        x = self.data[name].x
        for start in range(0, len(x), self.eval_rows):
            yield as_float(x[start:start + self.eval_rows])

    def close(self) -> None:
        """Nothing to release."""


class _StreamDataset(torch.utils.data.Dataset):
    """What the DataLoader workers read. An item is a whole training step,
    ``("step", ((stream, rows), ...))`` -> ``{stream: (x, y, rows)}``, or an
    evaluation chunk, ``("eval", stream, start, stop)`` -> ``x``; inputs come
    back as stored (uint8 images stay uint8: a quarter of the bytes to copy)."""

    def __init__(self, streams: dict[str, tuple[Any, torch.Tensor]]):
        self.streams = streams

    def _inputs(self, name: str, rows: torch.Tensor) -> torch.Tensor:
        x = self.streams[name][0]
        return x.read(rows) if is_lazy(x) else x[rows]

    def __getitem__(self, key):
        if key[0] == "step":
            return {name: (self._inputs(name, rows), self.streams[name][1][rows], rows) for name, rows in key[1]}
        _, name, start, stop = key
        return self._inputs(name, torch.arange(start, stop))


class _Keys(torch.utils.data.Sampler):
    """The keys a DataLoader fetches next: the iterator the batch source last set.
    The DataLoader iterates it in the training process, a few steps ahead of the loop.
    ``iter()`` hands out that same iterator (a multi-process loader calls it twice per
    pass), so every key is fetched once."""

    def __init__(self):
        self.keys: Iterator = iter(())

    def __iter__(self):
        return self.keys


def _as_is(item):
    return item


class LoaderBatches:
    """Batches read through ``torch.utils.data.DataLoader`` worker processes (streamed data).

    One loader feeds training (an item is one step's rows of every stream of the
    phase, so one worker decodes one step) and one feeds evaluation (an item is
    a chunk of a test split, in order). Both are seeded (their generators fix
    the workers' seeds without touching torch's global generator), keep their
    workers between phases and evaluations (``persistent_workers``) and pin
    their batches on CUDA so that the copy to the device overlaps the step.
    ``workers=0`` reads in the training process.
    """

    mode = "stream"

    def __init__(self, data: dict[str, StreamData], device: torch.device, workers: int, seed: int,
                 eval_rows: int = STREAM_EVAL_BATCH_SIZE):
        self.data, self.device, self.workers, self.seed = data, device, workers, seed
        self.eval_rows = min(eval_rows, STREAM_EVAL_BATCH_SIZE)
        self.dataset = _StreamDataset({n: (d.x if is_lazy(d.x) else d.x.cpu(), d.y.cpu()) for n, d in data.items()})
        self._open()

    def _open(self) -> None:
        common = dict(batch_size=None, num_workers=self.workers, collate_fn=_as_is,
                      pin_memory=self.device.type == "cuda", persistent_workers=self.workers > 0)
        self._train_keys, self._eval_keys = _Keys(), _Keys()
        self.train_loader = torch.utils.data.DataLoader(
            self.dataset, sampler=self._train_keys, generator=torch.Generator().manual_seed(self.seed), **common)
        self.eval_loader = torch.utils.data.DataLoader(
            self.dataset, sampler=self._eval_keys, generator=torch.Generator().manual_seed(self.seed + 1), **common)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True)

    def steps(self, streams: tuple[str, ...], count: int, batch_size: int,
              generator: torch.Generator) -> Iterator[dict[str, Stream]]:
        """``count`` training batches of ``streams``: the rows of :func:`index_plan`, read by the workers."""
        sizes = {n: len(self.data[n]) for n in streams}
        plan = index_plan(sizes, streams, count, batch_size, generator, torch.device("cpu"))
        self._train_keys.keys = (("step", tuple(rows.items())) for rows in plan)
        for item in self.train_loader:
            yield {n: Stream(as_float(self._to_device(x)), self._to_device(y), self._to_device(idx))
                   for n, (x, y, idx) in item.items()}

    def inputs(self, name: str) -> Iterator[torch.Tensor]:
        """Every input of stream ``name`` in row order, as float chunks on the device."""
        n = len(self.data[name])
        self._eval_keys.keys = iter([("eval", name, start, min(start + self.eval_rows, n))
                                     for start in range(0, n, self.eval_rows)])
        for x in self.eval_loader:
            yield as_float(self._to_device(x))

    def close(self) -> None:
        """End the worker processes now (fresh loaders start new ones if used again): dropping
        the loaders frees their iterators, whose finalisers shut the workers down."""
        self._open()


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

    def __init__(self, config: RunConfig, pair: DomainPair | None = None, available_memory: int | None = None):
        """``available_memory``: bytes the run may use (default: the system's ``MemAvailable``); a run on
        the CPU whose estimated peak (:func:`tlcore.memory.estimate_run_peak`) exceeds it raises
        :class:`~tlcore.errors.ResourceError` here, before any training."""
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
            data_dir=config.data_dir or None, data_mode=config.data_mode, heterogeneous=cls.heterogeneous)
        if self.pair.heterogeneous and not cls.heterogeneous:
            from .data.registry import check_representations
            check_representations(self.pair.source, self.pair.target)  # raises, naming the strategies that can
        self.data_mode, self.data_note = self._choose_data_mode()
        with _init_lock, torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            # The model takes target inputs (the same as the source's, except in a heterogeneous pair).
            model_name = cls.auto_models.get(self.pair.target.kind, "auto") if config.model == "auto" else config.model
            self.model = build_model(model_name, self.pair.target.kind, self.pair.target.input_shape,
                                     len(self.pair.class_names)).to(self.device)
            if self.device.type == "cuda" and getattr(self.model, "channels_last", False):
                # torchvision backbones: NHWC convolutions run faster under AMP on tensor cores;
                # their input adapter makes each batch channels_last too.
                self.model = self.model.to(memory_format=torch.channels_last)
            data = self._resident_data() if self.data_mode == "resident" else self._streamed_data()
            self.ctx = Context(config=self.config, params=self.params, pair=self.pair, model=self.model,
                               device=self.device, data=data)
            self.ctx.modules = self.strategy.extra_modules(self.ctx).to(self.device)
        self.phases: list[Phase] = self.strategy.phases(self.ctx)
        if abs(sum(p.share for p in self.phases) - 1.0) > 1e-6:
            raise ValueError(f"{cls.name}: phase shares must sum to 1")
        self.batch_size_fit: BatchSizeFit | None = None
        if self.device.type == "cuda" and config.batch_size_auto and self.pair.target.kind == "image":
            self.batch_size_fit = self._fit_batch_size()
            self.config = self.config.replace(batch_size=self.batch_size_fit.chosen)
            self.ctx.config = self.config
        n_max = max(len(self.pair.source.y_train), len(self.pair.target.y_train))
        self.ctx.steps_per_epoch = math.ceil(n_max / self.config.batch_size)
        self.ctx.total_steps = config.epochs * self.ctx.steps_per_epoch
        self.per_row_bytes = memory.activation_bytes_per_row(self.model, self.pair.target.input_shape)
        self.eval_rows = memory.rows_for_budget(memory.EVAL_MEMORY_BUDGET, self.per_row_bytes, EVAL_BATCH_SIZE)
        width = max(len(p.streams) for p in self.phases)
        self.peak_estimate = memory.estimate_run_peak(
            _resident_bytes(data) if self.data_mode == "resident" else 0, self.per_row_bytes,
            width * self.config.batch_size, self.eval_rows)
        if self.device.type == "cpu":  # on a GPU the data and activations live in device memory
            memory.check_fits(self.peak_estimate,
                              memory.memory_available() if available_memory is None else available_memory)
        self.batches = ResidentBatches(data, self.device, self.eval_rows) if self.data_mode == "resident" else \
            LoaderBatches(data, self.device, config.loader_workers, config.seed, self.eval_rows)
        self.ctx.batches = self.batches
        self.threads = config.threads or auto_threads(self.device)

    # --- data ---------------------------------------------------------------------
    def _choose_data_mode(self) -> tuple[str, str]:
        """``"resident"`` or ``"stream"`` for this run, and a sentence saying why (for the run record)."""
        cfg = self.config
        lazy = [role for role in ("source", "target") if is_lazy(getattr(self.pair, role).x_train)]
        if lazy and cfg.data_mode == "resident":
            raise ConfigError(f"data_mode='resident', but the {' and '.join(lazy)} domain streams from disk; "
                              "build the pair with make_pair(..., data_mode='resident') or use data_mode='auto'")
        if not lazy and cfg.data_mode != "stream":
            return "resident", (f"data: held in memory on {self.device.type} and batched by indexing "
                                f"(data_mode={cfg.data_mode}: both domains fit under the resident limit)"
                                if cfg.data_mode == "auto" else
                                f"data: held in memory on {self.device.type} and batched by indexing (data_mode=resident)")
        workers = (f"{cfg.loader_workers} DataLoader worker process(es)" if cfg.loader_workers
                   else "a DataLoader in the training process (loader_workers=0)")
        why = "data_mode=stream" if cfg.data_mode == "stream" else \
            f"data_mode=auto: the {' and '.join(lazy)} images exceed the resident limit"
        pinned = ", pinned for the copy to the GPU" if self.device.type == "cuda" else ""
        return "stream", (f"data: streamed ({why}); batches decoded by {workers}{pinned}; "
                          "the same rows per step as resident data")

    def _streamed_data(self) -> dict[str, StreamData]:
        """Streams for :class:`LoaderBatches`: inputs stay where they are (files or CPU), labels on the device."""
        p, dev = self.pair, self.device
        s, t = p.source, p.target
        lab = p.target_labelled
        return {
            "source": StreamData(s.x_train, s.y_train.to(dev)),
            "target": StreamData(t.x_train, t.y_train.to(dev)),
            "target_labelled": StreamData(take_rows(t.x_train, lab), t.y_train[lab].to(dev)),
            "target_all": StreamData(t.x_train, t.y_train.to(dev)),
            "source_test": StreamData(s.x_test, s.y_test.to(dev)),
            "target_test": StreamData(t.x_test, t.y_test.to(dev)),
        }

    def _fit_batch_size(self) -> BatchSizeFit:
        """The largest batch size up to the configured one whose training step fits in GPU memory.

        Each trial is a forward and backward pass of the real model (with AMP as
        configured, channels_last as trained) on random images, as many per step
        as the widest phase feeds it (e.g. source and target together), with room
        held for Adam's two moment buffers per parameter. Batch-norm statistics,
        gradients and the random generators are left as they were.
        """
        dev, model = self.device, self.model
        width = max(len(p.streams) for p in self.phases)
        shape, classes = self.pair.target.input_shape, len(self.pair.class_names)
        trainable = [p for p in list(model.parameters()) + list(self.ctx.modules.parameters()) if p.requires_grad]
        saved_buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
        reserve = [torch.empty_like(p) for p in trainable for _ in range(2)]  # Adam's exp_avg and exp_avg_sq
        generator = torch.Generator(device=dev).manual_seed(0)
        was_training = model.training
        model.train()

        def try_step(size: int) -> None:
            try:
                rows = width * size
                x = torch.randint(0, 256, (rows, *shape), dtype=torch.uint8, device=dev, generator=generator)
                y = torch.randint(0, classes, (rows,), device=dev, generator=generator)
                with torch.random.fork_rng(devices=[dev]), self._autocast():
                    _, logits = model.forward_with_features(as_float(x))
                    loss = F.cross_entropy(logits.float(), y)
                loss.backward()
                torch.cuda.synchronize(dev)
            finally:
                for p in trainable:
                    p.grad = None

        try:
            return choose_batch_size(dev, try_step, self.config.batch_size)
        finally:
            del reserve
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(saved_buffers[name])
            model.train(was_training)
            torch.cuda.empty_cache()

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
    def _predict_chunks(self, chunks: Iterator[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = self.model.training
        self.model.eval()
        feats, preds = [], []
        with self._autocast():
            for x in chunks:
                f, logits = self.model.forward_with_features(x)
                feats.append(f.float())
                preds.append(logits.argmax(1))
        self.model.train(was_training)
        return torch.cat(feats), torch.cat(preds)

    def predict_split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and predicted labels for every row of stream ``name`` (e.g. ``"target_test"``),
        in order, read through the run's batch source (DataLoader workers when streamed)."""
        return self._predict_chunks(self.batches.inputs(name))

    def release_workers(self) -> None:
        """End any DataLoader worker processes now (runs do this when they end; they restart if needed)."""
        self.batches.close()

    def evaluate(self) -> tuple[float, float, dict[str, float], torch.Tensor]:
        """Source and target test accuracy, extras, and the target predictions."""
        src, tgt = self.ctx.data["source_test"], self.ctx.data["target_test"]
        ft, pt = self.predict_split("target_test")
        if self.pair.heterogeneous:
            # The model takes target inputs only: no source accuracy (NaN), no feature gap.
            t_acc = (pt == tgt.y).float().mean().item()
            extras = dict(self.strategy.eval_extras(self.ctx, ft[:0], ft))
            return math.nan, t_acc, extras, pt
        fs, ps = self.predict_split("source_test")
        accs = torch.stack([(ps == src.y).float().mean(), (pt == tgt.y).float().mean()]).tolist()
        extras = {"feature_mmd2": _eval_feature_mmd2(fs, ft)}
        extras.update(self.strategy.eval_extras(self.ctx, fs, ft))
        return accs[0], accs[1], extras, pt

    # --- the loop -------------------------------------------------------------------
    def _autocast(self):
        precision = compute_precision(self.device, self.config.amp)
        if precision != "fp32":
            return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
        return contextlib.nullcontext()

    def run(self, stop: StopFlag | None = None) -> Iterator[ev.Event]:
        """Train, yielding events. Stops cleanly between steps once ``stop.is_set()``."""
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield from self._run(stop)
        finally:
            torch.set_num_threads(previous_threads)
            self.release_workers()

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
        use_scaler = compute_precision(dev, cfg.amp) == "fp16"  # bf16 needs no loss scaling
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
            opt = make_optimizer(params, cfg, base_lr)
            for n in phase.streams:
                if len(ctx.data[n]) == 0:
                    raise ConfigError(f"strategy {self.strategy.name!r} needs the {n!r} stream, which is empty")
            batches = self.batches.steps(phase.streams, phase_steps, cfg.batch_size, gen)
            self.model.train()
            ctx.modules.train()
            log = _LossLog(cfg.log_every, dev)
            last_log_t, examples = time.perf_counter(), 0
            for _ in range(phase_steps):
                if stop is not None and stop.is_set():
                    stopped = True
                    break
                ctx.step = step
                batch = next(batches)
                examples += sum(len(b.y) for b in batch.values())
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
            batches.close()
            if log.rows:  # a phase that ended (or stopped) between two log points
                yield self._step_event(log, step, phase, weights, terms, t0, last_log_t, examples)
            if stopped:
                break
        ctx.step = step
        if not stopped:
            self.strategy.finish(ctx)
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


def _resident_bytes(data: dict[str, StreamData]) -> int:
    """Bytes of the distinct tensors (inputs and labels) that ``data``'s streams hold."""
    seen: dict[int, int] = {}
    for d in data.values():
        for t in (d.x, d.y):
            if isinstance(t, torch.Tensor):
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


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


def make_optimizer(params: list[torch.nn.Parameter], config: RunConfig, lr: float) -> torch.optim.Optimizer:
    """The optimiser that ``config`` names: Adam, or SGD with ``config.momentum`` (DANN's recipe)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)


def recipe_note(config: RunConfig) -> str:
    """The optimisation recipe of a run in one line, for its record."""
    if config.optimizer == "sgd":
        opt = f"SGD, momentum {config.momentum:g}"
    else:
        opt = "Adam"
    schedule = ("annealed lr / (1 + 10p)^0.75 over progress p" if config.lr_schedule == "anneal"
                else "constant lr")
    decay = f", weight decay {config.weight_decay:g}" if config.weight_decay else ""
    return (f"recipe: {opt}, lr {config.lr:g} ({schedule}){decay}, batch {config.batch_size} per stream, "
            f"{config.epochs} epochs")


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

