"""Self-training: the classifier labels the target examples it is confident about and trains on
those labels; on images, FixMatch-style, the label comes from a weak view and trains the
prediction on a strong view (Lee, ICML-W 2013; Sohn et al., NeurIPS 2020).

Which examples get pseudo-labels (``selection``): by default CBST's class-balanced share (Zou et
al., ECCV 2018), the most confident fraction of each predicted class, growing over training, so
that a class the model is less sure of is not starved and the term is never inert; or
FixMatch's fixed threshold (an untrained model passes no example, and the term starts at 0);
or FlexMatch's class-wise thresholds (Zhang et al., NeurIPS 2021), which start at 0 and, on a
shifted target, can lock the model onto one class (measured on digits -> digits:noise=0.4).
The term's weight ramps up from 0 (Lee's schedule), so that early, mostly wrong labels count little.

It is also a negative-transfer demonstrator: when the source model is confidently wrong on
the target, its wrong labels pass the threshold and are learnt (confirmation bias). The run
reports how many target examples pass (coverage) and how often their pseudo-labels are right
(accuracy, against the target labels, which are read for this report only and never trained
on), per evaluation interval.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import spec
from ..data.augment import jitter, strong_augment, weak_augment
from ..losses import class_balanced_selection, curriculum_thresholds, pseudo_label_loss
from .base import Phase, Strategy, supervised_streams, task_loss


@dataclass(frozen=True)
class SelfTrainingConfig:
    weight: float = spec(1.0, "weight of the pseudo-label term against the task loss (FixMatch's λ_u)", 0.0, 100.0)
    threshold: float = spec(0.95, "threshold and flexmatch: confidence a prediction needs to become a pseudo-label "
                                  "(FixMatch's τ)",
                            0.0, 1.0)
    weak_shift: int = spec(2, "images: the weak view shifts by up to this many pixels (no flips)", 0, 16)
    strong_degrees: float = spec(15.0, "images: the strong view rotates by up to this many degrees", 0.0, 180.0)
    strong_shift: float = spec(3.0, "images: the strong view shifts by up to this many pixels", 0.0, 16.0)
    strong_scale: float = spec(0.1, "images: the strong view zooms by a factor in [1 - this, 1 + this]", 0.0, 0.9)
    strong_noise: float = spec(0.1, "images: gaussian noise on the strong view, in pixel standard deviations",
                               0.0, 2.0)
    cutout: float = spec(0.4, "images: side of the strong view's cutout square, as a fraction of the image side",
                         0.0, 1.0)
    ramp: float = spec(0.3, "the weight rises linearly from 0 over this fraction of training (Lee, 2013: "
                            "pseudo-labels count once the model has learnt the source); 0 = full weight at once",
                       0.0, 1.0)
    selection: str = spec("class_balanced", "which target examples get pseudo-labels: class_balanced (CBST, Zou et "
                          "al. 2018: the most confident fraction of each predicted class), threshold (FixMatch: "
                          "confidence >= threshold) or flexmatch (per-class thresholds lowered for classes few "
                          "examples are confidently predicted as yet; Zhang et al., NeurIPS 2021)",
                          choices=("class_balanced", "threshold", "flexmatch"))
    fraction_start: float = spec(0.2, "class_balanced: fraction of each predicted class selected at the start", 0.0, 1.0)
    fraction_end: float = spec(0.5, "class_balanced: fraction selected at the end (it grows linearly)", 0.0, 1.0)
    jitter: float = spec(0.0, "2-D points: gaussian jitter (std) on the view that is trained; 0 = the plain "
                              "pseudo-label loss", 0.0, 10.0)


class SelfTraining(Strategy):
    name = "self_training"
    summary = ("Self-training: learn the target examples the model is confident about with their predicted "
               "labels; on images a weak view labels a strong one, FixMatch-style (Sohn et al., NeurIPS 2020).")
    Config = SelfTrainingConfig

    def phases(self, ctx):
        p: SelfTrainingConfig = self.params
        supervised = supervised_streams(ctx)
        streams = supervised + ("target",)
        images = ctx.pair.target.kind == "image"
        # The views' random draws: one seeded generator per run, in step order.
        self.generator = torch.Generator().manual_seed(ctx.config.seed + 7919)
        self._counts = torch.zeros(3, device=ctx.device)  # seen, confident, confident and right
        # FlexMatch's memory: the class each target example was last predicted with confidence >= τ (-1: never).
        self._assigned = torch.full((len(ctx.data["target"]),), -1, dtype=torch.long, device=ctx.device)
        classes = len(ctx.pair.class_names)

        def views(x):
            if images:
                return (weak_augment(x, p.weak_shift, self.generator),
                        strong_augment(x, self.generator, p.strong_degrees, p.strong_shift, p.strong_scale,
                                       p.strong_noise, p.cutout))
            return x, (jitter(x, p.jitter, self.generator) if p.jitter > 0 else None)

        def losses(batch, c):
            weak, strong = views(batch["target"].x)
            xs = [batch[n].x for n in supervised] + [weak] + ([strong] if strong is not None else [])
            _, logits = c.model.forward_with_features(torch.cat(xs))
            sizes = [len(x) for x in xs]
            parts = list(torch.split(logits, sizes))
            out = {n: (None, parts[i]) for i, n in enumerate(supervised)}
            weak_logits = parts[len(supervised)]
            strong_logits = parts[-1] if strong is not None else weak_logits
            selected, thresholds = None, p.threshold
            if p.selection == "class_balanced":
                fraction = p.fraction_start + (p.fraction_end - p.fraction_start) * c.progress
                selected = class_balanced_selection(torch.softmax(weak_logits.detach().float(), 1), fraction)
            elif p.selection == "flexmatch":
                thresholds = curriculum_thresholds(self._assigned, classes, p.threshold)
            term, mask, labels = pseudo_label_loss(weak_logits, strong_logits, thresholds, selected)
            if p.selection == "flexmatch":
                with torch.no_grad():
                    sure = torch.softmax(weak_logits.detach().float(), 1).max(1).values >= p.threshold
                    rows = batch["target"].index
                    self._assigned[rows] = torch.where(sure, labels, self._assigned[rows])
            with torch.no_grad():  # stays on the device; read once per evaluation
                right = mask & (labels == batch["target"].y)
                self._counts[0] += len(mask)
                self._counts[1] += mask.sum()
                self._counts[2] += right.sum()
            return {"task": task_loss(out, batch, supervised), "pseudo_label": term}
        return [Phase("adapt", streams, losses)]

    def weights(self, ctx):
        return {"pseudo_label": self.params.weight * self.ramp(ctx)}

    def ramp(self, ctx) -> float:
        ramp = self.params.ramp
        return 1.0 if ramp <= 0 else min(1.0, ctx.progress / ramp)

    def step_extras(self, ctx):
        return {"pseudo_label_ramp": self.ramp(ctx)}

    def eval_extras(self, ctx, source_features, target_features):
        """Since the last evaluation: the fraction of target examples that passed their threshold
        and were trained on (coverage) and the accuracy of their pseudo-labels (left out while
        none passes)."""
        seen, confident, right = self._counts.tolist()
        self._counts.zero_()
        if seen == 0:
            return {}
        extras = {"pseudo_label_coverage": confident / seen}
        if confident > 0:
            extras["pseudo_label_accuracy"] = right / confident
        return extras
