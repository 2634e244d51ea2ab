"""Seed siblings and the NTG over seeds (tlcore.seeds), against hand-computed values."""
import math

import pytest

from tlcore.config import RunConfig
from tlcore.ntg import NEGATIVE_TRANSFER, POSITIVE_TRANSFER, SINGLE_SEED, WITHIN_NOISE
from tlcore.runs import RunStore
from tlcore.seeds import ntg_by_configuration, ntg_over_seeds, seed_free_key, seed_siblings

# t_{0.975, 2} and t_{0.975, 1}: 97.5% quantiles of Student's t (tables: 4.3027, 12.706).
T_975_DF2 = 4.302652729911275
T_975_DF1 = 12.706204736174707

BASE = RunConfig(source="digits:permute", target="digits", strategy="finetune", target_labels=2, epochs=1)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite")


def add_run(store: RunStore, config: RunConfig, ntg: float | None, status: str = "done") -> str:
    run_id = store.create_run(config.to_dict(), status="running")
    metrics = {"target_accuracy": 0.5}
    if ntg is not None:
        metrics.update(ntg=ntg, target_only_accuracy=0.5 + ntg)
    store.finish(run_id, status, metrics)
    return run_id


def test_seed_free_key_ignores_the_seed_and_observation_settings_only():
    assert seed_free_key(BASE) == seed_free_key(BASE.replace(seed=7))
    assert seed_free_key(BASE) == seed_free_key(BASE.replace(seed=3, device="cpu", log_every=5, threads=1))
    assert seed_free_key(BASE) == seed_free_key(BASE.to_dict())  # a stored config dict works too
    # explicit default hyperparameters compute the same thing as none
    assert seed_free_key(BASE) == seed_free_key(BASE.replace(params={"reset_head": False}))
    for changed in (BASE.replace(epochs=2), BASE.replace(target_labels=3), BASE.replace(lr=0.01),
                    BASE.replace(strategy="dann"), BASE.replace(target="digits:invert"),
                    BASE.replace(params={"reset_head": True})):
        assert seed_free_key(changed) != seed_free_key(BASE)


def test_three_seeds_by_hand_and_only_the_same_configuration(store):
    first = add_run(store, BASE.replace(seed=0), 0.1)
    add_run(store, BASE.replace(seed=1, device="cpu"), 0.2)  # the device does not change the result
    add_run(store, BASE.replace(seed=2), 0.9)                # seed 2 again, below: the newest one counts
    newest_2 = add_run(store, BASE.replace(seed=2), 0.3)
    # not siblings: another schedule, another strategy, another budget, no NTG, not done
    add_run(store, BASE.replace(seed=3, epochs=2), -0.5)
    add_run(store, BASE.replace(seed=3, strategy="dann"), -0.5)
    add_run(store, BASE.replace(seed=3, target_labels=3), -0.5)
    add_run(store, BASE.replace(seed=4), None)
    add_run(store, BASE.replace(seed=5), -0.5, status="stopped")

    record = store.get_run(first)
    siblings = seed_siblings(record, store)
    assert [r.seed for r in siblings] == [0, 1, 2]
    assert siblings[2].id == newest_2
    summary = ntg_over_seeds(record, store)
    # gaps 0.1, 0.2, 0.3: mean 0.2; s = sqrt((0.1² + 0 + 0.1²) / 2) = 0.1;
    # half width t_{0.975,2} · s / √3 = 4.3027 · 0.1 / 1.7321 = 0.24841
    assert summary.n == 3
    assert summary.mean == pytest.approx(0.2)
    assert summary.std == pytest.approx(0.1)
    assert summary.ci_low == pytest.approx(0.2 - 0.248414, abs=1e-6)
    assert summary.ci_high == pytest.approx(0.2 + T_975_DF2 * 0.1 / math.sqrt(3))
    assert summary.label == WITHIN_NOISE
    # any sibling gives the same answer, and so does a stopped run of the configuration
    assert ntg_over_seeds(store.get_run(newest_2), store) == summary
    stopped = next(r for r in store.list_runs(status="stopped"))
    assert [r.seed for r in seed_siblings(stopped, store)] == [0, 1, 2]


def test_a_clear_negative_transfer_and_a_clear_positive_one(store):
    ids = [add_run(store, BASE.replace(seed=s), g) for s, g in enumerate([0.2, 0.25, 0.3])]
    summary = ntg_over_seeds(store.get_run(ids[0]), store)
    # mean 0.25, s = 0.05, half width 4.3027 · 0.05 / √3 = 0.12421: (0.12579, 0.37421) > 0
    assert summary.mean == pytest.approx(0.25)
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(0.125793, abs=1e-6),
                                                 pytest.approx(0.374207, abs=1e-6))
    assert summary.label == NEGATIVE_TRANSFER

    other = BASE.replace(strategy="dann", params={})
    ids = [add_run(store, other.replace(seed=s), g) for s, g in enumerate([-0.1, -0.2])]
    summary = ntg_over_seeds(store.get_run(ids[1]), store)
    # mean -0.15, s = 0.070711, half width 12.706 · 0.070711 / √2 = 0.63531: contains 0
    assert summary.mean == pytest.approx(-0.15)
    assert summary.std == pytest.approx(math.sqrt(0.005))
    assert summary.ci_high == pytest.approx(-0.15 + T_975_DF1 * math.sqrt(0.005) / math.sqrt(2))
    assert summary.label == WITHIN_NOISE
    summary = ntg_over_seeds(store.get_run(ids[1]), store, confidence=0.5)
    # t_{0.75,1} = 1: half width 0.070711 / √2 = 0.05, so (-0.2, -0.1) < 0
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(-0.2), pytest.approx(-0.1))
    assert summary.label == POSITIVE_TRANSFER


def test_one_seed_and_no_ntg(store):
    one = add_run(store, BASE, 0.12)
    summary = ntg_over_seeds(store.get_run(one), store)
    assert (summary.n, summary.mean, summary.std, summary.label) == (1, pytest.approx(0.12), None, SINGLE_SEED)
    unsupervised = add_run(store, BASE.replace(target_labels=0, strategy="dann"), None)
    assert ntg_over_seeds(store.get_run(unsupervised), store) is None
    assert seed_siblings(store.get_run(unsupervised), store) == []


def test_a_record_with_an_unreadable_config_has_no_siblings(store):
    run_id = store.create_run({**BASE.to_dict(), "removed_setting": 1}, status="running")
    store.finish(run_id, "done", {"target_accuracy": 0.5, "ntg": 0.1})
    add_run(store, BASE, 0.2)
    assert seed_siblings(store.get_run(run_id), store) == []
    assert [g.gaps for g in ntg_by_configuration(store.list_runs())] == [(0.2,)]


def test_ntg_by_configuration_groups_over_seeds(store):
    for s, g in enumerate([0.1, 0.2, 0.3]):
        add_run(store, BASE.replace(seed=s), g)
    longer = BASE.replace(epochs=3)
    add_run(store, longer.replace(seed=0), -0.1)
    newest = add_run(store, longer.replace(seed=4), -0.3)
    add_run(store, BASE.replace(seed=9), 0.5, status="stopped")  # not done: left out
    groups = ntg_by_configuration(store.list_runs())
    assert len(groups) == 2
    first, second = groups  # in the order of their newest run
    assert first.record.id == newest and first.seeds == (0, 4) and first.gaps == (-0.1, -0.3)
    assert first.summary.mean == pytest.approx(-0.2) and first.summary.n == 2
    assert second.seeds == (0, 1, 2) and second.gaps == (0.1, 0.2, 0.3)
    assert second.summary.std == pytest.approx(0.1) and second.summary.label == WITHIN_NOISE
    assert first.key == seed_free_key(longer) and second.key == seed_free_key(BASE)
    assert len(second.run_ids) == 3
