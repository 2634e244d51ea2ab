"""Shared test setup: one intra-op thread (fast and deterministic for small
models on 2 cores), a throw-away run store per test, and no silent skips in CI.

Under ``CI=true`` every skipped test FAILS, unless its node id is in
:data:`CI_ALLOWED_SKIPS` with the reason it may skip there; the list is printed
at the end of the session. A skip hides a test that never runs: fix its cause
(a missing dependency, a network it reaches for) rather than list it.
"""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)

# node id -> why it may skip in CI (a fact of the machine, not of the code under test)
CI_ALLOWED_SKIPS: dict[str, str] = {
    "tests/test_train.py::test_missing_gpu_is_a_clear_error":
        "checks the message on a machine without a CUDA GPU; a GPU runner has no such message",
    "tests/test_store_faults.py::test_a_reused_pid_does_not_keep_a_run_running":
        "needs /proc (Linux) to tell when a process started",
    "tests/test_store_faults.py::test_read_only_folder_lists_runs_and_refuses_writes":
        "drops root's file capabilities with Linux prctl",
}
_CI_SKIPS_KEY = pytest.StashKey[list]()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _enforce(report, config) -> None:
    """Under CI=true, turn the skip in ``report`` into a failure unless it is allowed."""
    if not (_in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    allowed = report.nodeid in CI_ALLOWED_SKIPS
    config.stash.setdefault(_CI_SKIPS_KEY, []).append((report.nodeid, reason, allowed))
    if not allowed:
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true ({reason}): a test that skips in CI never runs. Fix the cause, "
                           f"or add {report.nodeid!r} with a reason to CI_ALLOWED_SKIPS in tests/conftest.py")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _enforce(outcome.get_result(), item.config)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _enforce(outcome.get_result(), collector.config)  # a whole module skipped (pytest.skip at import)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _in_ci():
        return
    seen = config.stash.get(_CI_SKIPS_KEY, [])
    terminalreporter.section("skips under CI=true")
    terminalreporter.write_line(f"allow-list (tests/conftest.py CI_ALLOWED_SKIPS), {len(CI_ALLOWED_SKIPS)} entries:")
    for nodeid, why in CI_ALLOWED_SKIPS.items():
        terminalreporter.write_line(f"  {nodeid}: {why}")
    allowed = [(n, r) for n, r, ok in seen if ok]
    refused = [(n, r) for n, r, ok in seen if not ok]
    terminalreporter.write_line(f"skipped here and allowed: {len(allowed)}; skipped here and FAILED: {len(refused)}")
    for nodeid, reason in refused:
        terminalreporter.write_line(f"  FAILED {nodeid}: {reason}")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own Transfer Lab home, so no test touches a user's runs. The app may read
    data anywhere in the test's folder (its data roots: tlcore.data.roots) and start runs of any length;
    the confinement and limit tests narrow these (tests/test_app_confinement.py)."""
    monkeypatch.setenv("TRANSFER_LAB_HOME", str(tmp_path / "tlhome"))
    monkeypatch.setenv("TRANSFER_LAB_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("TRANSFER_LAB_MAX_EPOCHS", "1000")  # RunConfig's own bound: tests stop long runs
    yield
