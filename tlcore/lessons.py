"""Classroom lessons: one-click sweeps that each show one fact about transfer learning.

Each :class:`Lesson` is a short written explanation, one sweep
(:mod:`tlcore.sweeps`), what to look for in its figure, and machine-checkable
:class:`Claim` s, so that a test can verify on the built-in data, averaged over
seeds, that the lesson still teaches something true (tests/test_lessons.py).
The settings were chosen by measurement on the built-in data (moons, blobs,
digits) and checked on six seeds; every sweep is a few short runs (seconds
each on one CPU thread), and ``tlcore sweep LESSON`` precomputes one into the
run store or an export file for rooms without a GPU.

:data:`LESSONS` is an explicit registry, in teaching order.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .config import RunConfig
from .ntg import mean_sd
from .runs import RunStore
from .sweeps import BudgetSweep, ComparisonSweep, ProgressCallback, SweepResult, SweepSpec, load_sweep, run_sweep

__all__ = ["Claim", "ClaimCheck", "Lesson", "LESSONS", "LESSON_SEEDS", "PRECOMPUTED_DIR", "precomputed_path",
           "load_precomputed"]

#: Seeds every lesson sweep uses by default (and its test checks the claims over).
LESSON_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class ClaimCheck:
    """A claim checked on a result: the paired per-seed differences ``better − worse`` in
    target accuracy, their mean and sample standard deviation (None for one seed), and
    whether the mean exceeds the claim's margin (``holds``; False when no seed has both)."""

    text: str
    holds: bool
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean_difference: float
    std_difference: float | None
    margin: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Claim:
    """"``better`` beats ``worse`` by more than ``margin``", in target accuracy averaged over
    seeds (paired by seed), both arms read at ``at`` (the budget ``k`` of a budget sweep, the
    value of a shift sweep, the source of a source sweep; None for a comparison). A negative
    margin states "not worse than by more than |margin|"."""

    text: str
    better: str
    worse: str
    at: Any = None
    margin: float = 0.0

    def check(self, result: SweepResult) -> ClaimCheck:
        better = result.accuracy_by_seed(self.better, self.at)
        worse = result.accuracy_by_seed(self.worse, self.at)
        seeds = tuple(sorted(set(better) & set(worse)))
        differences = tuple(better[s] - worse[s] for s in seeds)
        if not differences:
            return ClaimCheck(self.text, False, (), (), math.nan, None, self.margin)
        mean, std = mean_sd(differences)
        return ClaimCheck(self.text, mean > self.margin, seeds, differences, mean, std, self.margin)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Lesson:
    """One lesson: ``explanation`` (what happens and why), ``sweep`` (what to run),
    ``look_for`` (what to point at in the figure) and ``claims`` (what a test checks)."""

    name: str
    title: str
    explanation: str
    look_for: str
    sweep: SweepSpec
    claims: tuple[Claim, ...]

    def with_seeds(self, seeds: Sequence[int]) -> "Lesson":
        """The same lesson over other seeds."""
        return dataclasses.replace(self, sweep=dataclasses.replace(self.sweep, seeds=tuple(seeds)))

    def run(self, store: RunStore | None = None, *, stop=None, progress: ProgressCallback | None = None,
            on_run: Callable[[str], None] | None = None, train: bool = True) -> SweepResult:
        """Run (or with ``train=False`` collect) the lesson's sweep; see :func:`tlcore.sweeps.run_sweep`."""
        return run_sweep(self.sweep, store, stop=stop, progress=progress, on_run=on_run, train=train)

    def check(self, result: SweepResult) -> tuple[ClaimCheck, ...]:
        return tuple(claim.check(result) for claim in self.claims)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "explanation": self.explanation, "look_for": self.look_for,
                "sweep": self.sweep.to_dict(), "claims": [c.to_dict() for c in self.claims]}


# ------------------------------------------------------------------------------- the lessons
def _moons(target: str, strategy: str, epochs: int, target_labels: int = 0, **params) -> RunConfig:
    return RunConfig(source="moons", target=target, strategy=strategy, params=params, target_labels=target_labels,
                     epochs=epochs)


_FEW_LABELS = Lesson(
    name="fine_tuning_few_labels",
    title="Fine-tuning beats training from scratch when labels are few",
    explanation=(
        "The target is the two-moons problem rotated by 30 degrees, and only k of its examples per class are "
        "labelled. target_only trains a fresh network on those k examples alone; finetune first trains on the "
        "labelled source (the unrotated moons), then continues on the same k target examples. With one or two "
        "labels per class a network from scratch can draw almost any boundary through them; the source model "
        "already knows the shape of the moons, and the few target labels only have to turn it."),
    look_for=(
        "At k = 1 and 2 the finetune curve lies far above target_only. As k grows the gap closes: with every "
        "target label ('all'), the source no longer adds anything."),
    sweep=BudgetSweep(source="moons", target="moons:rotate=30", adaptation=None, budgets=(1, 2, 5, 20, "all"),
                      seeds=LESSON_SEEDS, base=RunConfig(epochs=20)),
    claims=(Claim("finetune beats target_only by more than 5 points at k = 2", better="finetune",
                  worse="target_only", at=2, margin=0.05),),
)

_PROBE = "linear probe"
_FINETUNE = "full fine-tuning"
_FEATURE_EXTRACTION = Lesson(
    name="feature_extraction_vs_fine_tuning",
    title="Feature extraction (a linear probe) versus fine-tuning",
    explanation=(
        "Both start from a network trained on the source moons and see two labelled target examples per class. "
        "A linear probe (finetune with freeze_depth = -1) keeps every feature layer frozen and retrains only the "
        "last linear layer; full fine-tuning updates the features too. When the target is close to the source "
        "(rotated 10 degrees) the source features already separate the target classes and the probe is as good "
        "as fine-tuning, with fewer parameters to fit. Rotated 50 degrees, the features the source taught no "
        "longer separate the classes linearly, and no retrained last layer can fix that."),
    look_for=(
        "Rotated 10 degrees: both about 99%. Rotated 50 degrees: the probe falls to about chance, below even "
        "target_only on the same two labels per class (a positive mean NTG, about +0.25: negative transfer), while "
        "fine-tuning keeps most of its accuracy. With three seeds the NTG interval is wide; add seeds to narrow it."),
    sweep=ComparisonSweep(arms=(
        (f"{_FINETUNE}, rotated 10°", _moons("moons:rotate=10", "finetune", 20, 2)),
        (f"{_PROBE}, rotated 10°", _moons("moons:rotate=10", "finetune", 20, 2, freeze_depth=-1)),
        (f"{_FINETUNE}, rotated 50°", _moons("moons:rotate=50", "finetune", 20, 2)),
        (f"{_PROBE}, rotated 50°", _moons("moons:rotate=50", "finetune", 20, 2, freeze_depth=-1)),
        ("target_only, rotated 50°", _moons("moons:rotate=50", "target_only", 20, 2)),  # the probe's baseline
    ), seeds=LESSON_SEEDS),
    claims=(
        Claim("rotated 50°: full fine-tuning beats the linear probe by more than 10 points",
              better=f"{_FINETUNE}, rotated 50°", worse=f"{_PROBE}, rotated 50°", margin=0.10),
        Claim("rotated 10°: the linear probe is within 3 points of full fine-tuning",
              better=f"{_PROBE}, rotated 10°", worse=f"{_FINETUNE}, rotated 10°", margin=-0.03),
        Claim("rotated 50°: the linear probe falls more than 5 points below target_only (negative transfer)",
              better="target_only, rotated 50°", worse=f"{_PROBE}, rotated 50°", margin=0.05),
    ),
)

_ADVERSARIAL = Lesson(
    name="adversarial_alignment_moons",
    title="Adversarial alignment (DANN) on rotated moons",
    explanation=(
        "The target is the two moons rotated by 35 degrees, with no target labels at all. source_only trains on the "
        "source and hopes: its boundary cuts through the rotated target. DANN adds a domain discriminator that "
        "tries to tell source features from target features, and a gradient-reversal layer that trains the "
        "features to fool it, so the classifier learns on features where the two domains overlap (Ganin et al., "
        "JMLR 2016)."),
    look_for=(
        "DANN's target accuracy ends well above source_only's, while the discriminator's accuracy (domain_accuracy) "
        "falls towards 0.5. On some seeds the gain is small: adversarial training is noisy, hence three seeds."),
    sweep=ComparisonSweep(arms=(
        ("source_only", _moons("moons:rotate=35", "source_only", 30)),
        ("dann", _moons("moons:rotate=35", "dann", 30)),
    ), seeds=LESSON_SEEDS),
    claims=(Claim("dann beats source_only by more than 5 points", better="dann", worse="source_only", margin=0.05),),
)

_BLOBS = dict(source="blobs:bias=3", target="blobs:bias=-3", epochs=20)
_IMPORTANCE = Lesson(
    name="importance_weighting_covariate_shift",
    title="Importance weighting under covariate shift",
    explanation=(
        "Three classes, each made of two Gaussian clusters on a ring. A sample-selection bias keeps mostly one side "
        "of the ring in the source (bias=3) and mostly the other side in the target (bias=-3): p(x) changes, "
        "p(y|x) does not. A model trained on the source sees few examples where the target lives, and its boundary "
        "there can be wrong. Importance weighting estimates p_target(x)/p_source(x) with a domain classifier and "
        "gives the rare source examples from the target's side more weight (Shimodaira 2000; Sugiyama et al. 2012)."),
    look_for=(
        "importance_weighting ends above source_only, close to the oracle trained on target labels. The effect is "
        "large on the seeds where source_only gets the under-sampled side wrong and nil where it already gets it "
        "right, and it shrinks with a longer training budget (about +2 points at 30 epochs instead of +7 at 20): "
        "the network then learns the sparse side anyway. Look at effective_sample_fraction: the price of the "
        "weights is fewer effective source examples."),
    sweep=ComparisonSweep(arms=(
        ("source_only", RunConfig(strategy="source_only", **_BLOBS)),
        ("importance_weighting", RunConfig(strategy="importance_weighting", **_BLOBS)),
        ("oracle", RunConfig(strategy="oracle", **_BLOBS)),
    ), seeds=LESSON_SEEDS),
    claims=(Claim("importance_weighting beats source_only by more than 3 points", better="importance_weighting",
                  worse="source_only", margin=0.03),),
)

_PERMUTED = RunConfig(source="digits:permute", target="digits", strategy="finetune", target_labels=2, epochs=10)
_UNRELATED = Lesson(
    name="negative_transfer_unrelated_source",
    title="Negative transfer from an unrelated task",
    explanation=(
        "The source holds the same kind of images as the target, handwritten digits, but every label is permuted: "
        "the source task is a different task on the same inputs. Fine-tuning from it with two labelled target "
        "examples per class starts from a network that confidently maps each digit to the wrong class, and a few "
        "fine-tuning steps at a small learning rate cannot undo that. Training on the 20 target examples alone does "
        "better: the negative-transfer gap NTG = error with the source − error without it is positive (Wang et "
        "al., CVPR 2019)."),
    look_for=(
        "finetune ends far below target_only, on every seed: NTG about +0.25, labelled 'negative transfer'. The "
        "input distributions are identical (MMD² and the proxy A-distance are about 0): a domain gap measured on "
        "inputs cannot warn about a change of task. Then re-run finetune with reset_head=true: with a fresh "
        "classifier head the same source helps (about 0.86 against 0.78 for target_only, measured on two seeds). "
        "The damage sits in the head's wrong label mapping, not in the features."),
    sweep=ComparisonSweep(arms=(
        ("finetune", _PERMUTED),
        ("target_only", _PERMUTED.replace(strategy="target_only", params={})),
    ), seeds=LESSON_SEEDS),
    claims=(Claim("target_only beats finetune from the permuted source by more than 5 points (NTG > 0.05)",
                  better="target_only", worse="finetune", margin=0.05),),
)

_IMBALANCED = "moons:rotate=20,prior=5"
_BALANCED = "moons:rotate=20"
_TOO_MUCH = Lesson(
    name="too_much_alignment",
    title="Too much alignment destroys class structure",
    explanation=(
        "Alignment methods make the distribution of target features match the source's. That is right when only "
        "the inputs moved. Here the target is also rotated 20 degrees, but one moon is five times as frequent as "
        "the other (prior=5), while the source is balanced. Matching the two feature distributions as a whole "
        "then forces part of the frequent target class onto the region of the other class: the classes are "
        "aligned wrongly (Zhao et al., ICML 2019: invariant features cannot fix a change of class proportions). "
        "The harder the alignment is pushed (a larger MMD weight), the more of the class structure it destroys."),
    look_for=(
        "On the imbalanced target, source_only > mmd weight 1 > mmd weight 10. On the balanced target the same "
        "mmd weight 10 is no worse than source_only: alignment itself is not the problem, aligning marginals "
        "whose class proportions differ is."),
    sweep=ComparisonSweep(arms=(
        ("source_only, imbalanced target", _moons(_IMBALANCED, "source_only", 30)),
        ("mmd weight 1, imbalanced target", _moons(_IMBALANCED, "mmd", 30, weight=1.0)),
        ("mmd weight 10, imbalanced target", _moons(_IMBALANCED, "mmd", 30, weight=10.0)),
        ("source_only, balanced target", _moons(_BALANCED, "source_only", 30)),
        ("mmd weight 10, balanced target", _moons(_BALANCED, "mmd", 30, weight=10.0)),
    ), seeds=LESSON_SEEDS),
    claims=(
        Claim("imbalanced target: source_only beats mmd weight 10 by more than 5 points",
              better="source_only, imbalanced target", worse="mmd weight 10, imbalanced target", margin=0.05),
        Claim("imbalanced target: mmd weight 1 beats mmd weight 10 (more alignment, more harm)",
              better="mmd weight 1, imbalanced target", worse="mmd weight 10, imbalanced target", margin=0.0),
        Claim("balanced target: mmd weight 10 does at least as well as source_only",
              better="mmd weight 10, balanced target", worse="source_only, balanced target", margin=0.0),
    ),
)

_ROTATED_20 = dict(source="moons", target="moons:rotate=20", target_labels=5, epochs=10)
_HETEROGENEOUS = dict(source="blobs:prior=5", target="blobs:prior=5,embed=20", epochs=10)
_FOUR_FAMILIES = Lesson(
    name="four_families",
    title="The four families of transfer: instances, features, models, relations",
    explanation=(
        "Transfer learning is taught as four families, by what moves from the source to the target. "
        "Instance-based: source examples, re-weighted to look like the target (importance_weighting on blobs "
        "with a sample-selection bias). Feature-based: a representation in which the two domains agree "
        "(jdot: an optimal-transport plan pairs source and target examples by feature distance and label fit, "
        "moons rotated 40 degrees, no target labels). Model-based: the parameters of a source-trained network, "
        "fine-tuned on five target labels per class (finetune, moons rotated 20 degrees). Relation-based: the "
        "relations between examples. rkd trains a fresh target network to keep a source-trained teacher's "
        "distances and angles between target examples, with the same five labels per class; gromov matches the "
        "examples of the two domains by the distances within each alone (Gromov-Wasserstein), so it transfers "
        "labels from 2-D blobs to the same blobs sent into 20 dimensions, a pair no other family can use."),
    look_for=(
        "Each family's arm beats its own reference: importance_weighting over source_only (a few points), jdot "
        "over source_only (about +30 points), finetune and rkd over target_only on the same five labels per class "
        "(about +8 points each). gromov has no reference at all: source_only cannot run on a 2-D source and a "
        "20-D target. Compare its accuracy (about 0.94) with always guessing the most frequent class (0.61). "
        "On the Inspect page, a gromov run shows its coupling and an rkd run its teacher's and student's "
        "distance matrices."),
    sweep=ComparisonSweep(arms=(
        ("instance: source_only", RunConfig(strategy="source_only", **_BLOBS)),
        ("instance: importance_weighting", RunConfig(strategy="importance_weighting", **_BLOBS)),
        ("feature: source_only", _moons("moons:rotate=40", "source_only", 10)),
        ("feature: jdot", _moons("moons:rotate=40", "jdot", 10)),
        ("model: target_only, k=5", RunConfig(strategy="target_only", **_ROTATED_20)),
        ("model: finetune, k=5", RunConfig(strategy="finetune", **_ROTATED_20)),
        ("relation: rkd, k=5", RunConfig(strategy="rkd", **_ROTATED_20)),
        ("relation: gromov, 2-D to 20-D", RunConfig(strategy="gromov", **_HETEROGENEOUS)),
    ), seeds=LESSON_SEEDS),
    claims=(
        Claim("instance: importance_weighting beats source_only by more than 3 points",
              better="instance: importance_weighting", worse="instance: source_only", margin=0.03),
        Claim("feature: jdot beats source_only by more than 10 points",
              better="feature: jdot", worse="feature: source_only", margin=0.10),
        Claim("model: finetune beats target_only by more than 3 points",
              better="model: finetune, k=5", worse="model: target_only, k=5", margin=0.03),
        Claim("relation: rkd beats target_only by more than 3 points",
              better="relation: rkd, k=5", worse="model: target_only, k=5", margin=0.03),
    ),
)

#: Every lesson, by name, in teaching order.
LESSONS: dict[str, Lesson] = {lesson.name: lesson for lesson in (
    _FEW_LABELS, _FEATURE_EXTRACTION, _ADVERSARIAL, _IMPORTANCE, _UNRELATED, _TOO_MUCH, _FOUR_FAMILIES)}


# ------------------------------------------------------------------------------- precomputed results
#: Each lesson's sweep as run on 2 CPU cores and exported with
#: ``tlcore sweep LESSON --export tlcore/lesson_results/LESSON.json`` (shipped with the package),
#: so a room without a GPU sees the full figure at once and can re-run any point live.
PRECOMPUTED_DIR = Path(__file__).resolve().parent / "lesson_results"


def precomputed_path(name: str) -> Path:
    """Where lesson ``name``'s shipped result file lives (it may be missing)."""
    if name not in LESSONS:
        from .errors import UnknownNameError
        raise UnknownNameError("lesson", name, LESSONS)
    return PRECOMPUTED_DIR / f"{name}.json"


def load_precomputed(name: str) -> SweepResult | None:
    """The shipped result of lesson ``name``, or None when none is shipped. A shipped file whose
    sweep is not the lesson's current sweep (the lesson changed since it was computed) is
    refused with a clear error rather than shown as if it were this lesson's result."""
    path = precomputed_path(name)
    if not path.is_file():
        return None
    result = load_sweep(path)
    if result.spec.to_dict() != LESSONS[name].sweep.to_dict():
        from .errors import TransferLabError
        raise TransferLabError(f"the precomputed result {path.name} was computed for another version of lesson "
                               f"{name!r}; recompute it with: tlcore sweep {name} --export {path}")
    return result
