"""Classroom lessons: the registry is well formed, claims are checked correctly, and, over
three seeds on the built-in data, every lesson's claims hold (the slow part).

The slow tests share one run store, so a run that two lessons both use trains once.
"""
import math

import pytest

from tlcore.config import RunConfig
from tlcore.lessons import LESSON_SEEDS, LESSONS, Claim, Lesson
from tlcore.runs import RunStore
from tlcore.sweeps import (ArmPoint, BudgetSweep, ComparisonResult, ComparisonSweep, RunRow, ShiftSweep,
                           SourceSweep, plan_sweep)


def test_registry_has_the_lessons_in_teaching_order():
    assert list(LESSONS) == ["fine_tuning_few_labels", "feature_extraction_vs_fine_tuning",
                             "adversarial_alignment_moons", "importance_weighting_covariate_shift",
                             "negative_transfer_unrelated_source", "too_much_alignment", "four_families"]
    for name, lesson in LESSONS.items():
        assert lesson.name == name
        assert lesson.title and len(lesson.explanation) > 100 and lesson.look_for and lesson.claims
        assert lesson.sweep.seeds == LESSON_SEEDS


def _arm_labels(spec):
    if isinstance(spec, ComparisonSweep):
        return {label for label, _ in spec.arms}
    return {arm.label for arm in spec.arms}


@pytest.mark.parametrize("name", list(LESSONS))
def test_every_claim_names_arms_and_a_point_that_the_sweep_has(name):
    lesson = LESSONS[name]
    labels = _arm_labels(lesson.sweep)
    for claim in lesson.claims:
        assert {claim.better, claim.worse} <= labels, (claim, labels)
        assert claim.better != claim.worse
        if isinstance(lesson.sweep, BudgetSweep):
            assert claim.at in lesson.sweep.budgets
        elif isinstance(lesson.sweep, ShiftSweep):
            assert claim.at in lesson.sweep.values
        elif isinstance(lesson.sweep, SourceSweep):
            assert claim.at in lesson.sweep.sources
        else:
            assert claim.at is None


def test_lesson_sweeps_stay_small():
    """A lesson is for a class on a projector: a few dozen short runs at most."""
    for lesson in LESSONS.values():
        if isinstance(lesson.sweep, ComparisonSweep):
            runs = len(plan_sweep(lesson.sweep))
        else:
            runs = len(lesson.sweep.arms) * len(lesson.sweep.budgets) * len(lesson.sweep.seeds)
        assert runs <= 30, (lesson.name, runs)


def _result(accuracies):
    """A comparison result with the given {arm: {seed: accuracy}}."""
    config = RunConfig(source="moons", target="moons", strategy="source_only")
    spec = ComparisonSweep(arms=tuple((arm, config) for arm in accuracies), seeds=(0, 1, 2))
    rows = tuple(RunRow(arm=arm, strategy="source_only", x=None, seed=seed, target_accuracy=acc, source_accuracy=1.0,
                        ntg=None, target_only_accuracy=None, run_id=f"{arm}{seed}")
                 for arm, by_seed in accuracies.items() for seed, acc in by_seed.items())
    points = tuple(ArmPoint(arm, "source_only", None, 3, 0.0, 0.0, None) for arm in accuracies)
    return ComparisonResult(spec=spec, plan=plan_sweep(spec), rows=rows, points=points)


def test_claim_check_pairs_seeds_and_compares_the_mean_with_the_margin():
    result = _result({"a": {0: 0.9, 1: 0.8, 2: 0.7}, "b": {0: 0.8, 1: 0.8, 2: 0.5}})
    check = Claim("a beats b", better="a", worse="b", margin=0.05).check(result)
    assert check.seeds == (0, 1, 2)
    assert check.differences == pytest.approx((0.1, 0.0, 0.2))
    assert check.mean_difference == pytest.approx(0.1)
    assert check.std_difference == pytest.approx(0.1)
    assert check.holds
    assert not Claim("a beats b by 20", better="a", worse="b", margin=0.2).check(result).holds
    assert not Claim("b beats a", better="b", worse="a").check(result).holds
    assert Claim("b within 15 of a", better="b", worse="a", margin=-0.15).check(result).holds


def test_claim_uses_only_seeds_both_arms_have_and_fails_without_any():
    result = _result({"a": {0: 0.9, 2: 0.7}, "b": {0: 0.8, 1: 0.1, 2: 0.8}})
    check = Claim("a beats b", better="a", worse="b").check(result)
    assert check.seeds == (0, 2) and check.mean_difference == pytest.approx(0.0) and not check.holds
    empty = Claim("x beats b", better="x", worse="b").check(result)
    assert not empty.holds and empty.seeds == () and math.isnan(empty.mean_difference)


def test_with_seeds_changes_only_the_seeds():
    lesson = LESSONS["adversarial_alignment_moons"]
    fewer = lesson.with_seeds([4])
    assert isinstance(fewer, Lesson) and fewer.sweep.seeds == (4,)
    assert fewer.sweep.arms == lesson.sweep.arms and fewer.claims == lesson.claims


# ------------------------------------------------------------------------------ the phenomena
@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("lessons") / "runs.sqlite")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LESSONS))
def test_lesson_claims_hold_over_three_seeds(name, shared_store):
    lesson = LESSONS[name]
    result = lesson.run(shared_store)
    assert result.complete and not result.failed
    for check in lesson.check(result):
        assert check.seeds == LESSON_SEEDS, check
        assert check.holds, (name, check.text, check.differences)


#: The cheapest shipped lesson (6 moons runs, about 11 s on 2 cores): the one re-run against its file.
CHEAPEST_LESSON = "adversarial_alignment_moons"


def reproduces(shipped_by_seed: dict, rerun_by_seed: dict, confidence: float = 0.95,
               resolution: float = 0.01) -> tuple[bool, float, float, float]:
    r"""Whether the re-run mean lies where a new mean of as many seeds is expected from the shipped
    seeds: the prediction interval :math:`\bar x \pm t_{1-(1-c)/2,\,n-1}\, s \sqrt{1/n + 1/m}`
    (``n`` shipped seeds with mean :math:`\bar x` and sd ``s``, ``m`` re-run seeds): the shipped
    t-interval widened by the re-run's own seed noise. ``s`` is floored at ``resolution`` (one point
    of accuracy), so identical shipped seeds do not demand bit-identity. Returns
    ``(holds, shipped mean, re-run mean, half-width)``."""
    from scipy.stats import t as student_t

    from tlcore.ntg import mean_sd
    n, m = len(shipped_by_seed), len(rerun_by_seed)
    mean, sd = mean_sd(shipped_by_seed.values())
    again, _ = mean_sd(rerun_by_seed.values())
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * max(sd or 0.0, resolution) * math.sqrt(1 / n + 1 / m)
    return abs(again - mean) <= half, mean, again, half


def test_the_reproduction_check_accepts_seed_noise_and_refuses_a_real_change():
    shipped = {0: 0.70, 1: 0.80, 2: 0.75}  # mean 0.75, sd 0.05: half-width 4.30 * 0.05 * 0.816 = 0.176
    assert reproduces(shipped, {0: 0.72, 1: 0.85, 2: 0.71})[0]
    holds, mean, again, half = reproduces(shipped, {0: 0.50, 1: 0.55, 2: 0.52})
    assert not holds and half == pytest.approx(4.3027 * 0.05 * math.sqrt(2 / 3), rel=1e-4)
    # identical shipped seeds: the floor of one accuracy point, not bit-identity
    assert reproduces({0: 0.9, 1: 0.9, 2: 0.9}, {0: 0.905, 1: 0.9, 2: 0.9})[0]
    assert not reproduces({0: 0.9, 1: 0.9, 2: 0.9}, {0: 0.8, 1: 0.8, 2: 0.8})[0]


@pytest.mark.slow
def test_rerunning_a_lesson_reproduces_its_shipped_numbers_within_the_seed_noise(shared_store):
    """The README's claim about tlcore/lesson_results: re-running a lesson gives its shipped numbers.
    Bit-identity across torch builds is not promised, so each arm's re-run mean over the lesson's
    seeds must lie within the shipped t-interval widened by the re-run's own noise (see
    :func:`reproduces`)."""
    from tlcore.lessons import load_precomputed
    shipped = load_precomputed(CHEAPEST_LESSON)
    rerun = LESSONS[CHEAPEST_LESSON].run(shared_store)
    assert rerun.complete and not rerun.failed
    for point in shipped.points:
        holds, mean, again, half = reproduces(shipped.accuracy_by_seed(point.arm, point.x),
                                              rerun.accuracy_by_seed(point.arm, point.x))
        assert holds, (point.arm, f"shipped {mean:.4f} ± {half:.4f}, re-run {again:.4f}")


@pytest.mark.parametrize("name", list(LESSONS))
def test_the_shipped_result_is_this_lesson_complete_and_its_claims_hold(name):
    """tlcore/lesson_results/NAME.json (what the Lessons page shows at once) was computed from
    the lesson's current sweep, holds every run, and its claims hold on it."""
    from tlcore.lessons import load_precomputed
    result = load_precomputed(name)
    assert result is not None, f"no shipped result for {name}: run tlcore sweep {name} --export ..."
    assert result.spec.to_dict() == LESSONS[name].sweep.to_dict()
    assert result.complete and not result.failed and len(result.rows) == len(result.plan)
    for check in LESSONS[name].check(result):
        assert check.seeds == LESSON_SEEDS and check.holds, (name, check.text, check.differences)


def test_a_stale_shipped_result_is_refused_with_the_command_that_remakes_it(tmp_path, monkeypatch):
    import json

    from tlcore import lessons
    from tlcore.errors import TransferLabError
    name = "adversarial_alignment_moons"
    doc = json.loads(lessons.precomputed_path(name).read_text())
    doc["spec"]["seeds"] = [5, 6]  # computed for another version of the lesson
    (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    monkeypatch.setattr(lessons, "PRECOMPUTED_DIR", tmp_path)
    with pytest.raises(TransferLabError, match=f"tlcore sweep {name} --export"):
        lessons.load_precomputed(name)
    assert lessons.load_precomputed("too_much_alignment") is None  # not shipped in that directory
    with pytest.raises(TransferLabError, match="unknown lesson"):
        lessons.precomputed_path("no_such_lesson")
