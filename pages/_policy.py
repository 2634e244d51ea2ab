"""The server's limits as the app applies them (``tlcore.policy.AppPolicy``, read from the environment).

Every place of the app that reads a path a user typed or starts training goes through here:

* :func:`policy` is the one policy (read again on each call: a cheap look at a few variables, and a test
  or an administrator may change them);
* :func:`admit` checks a run's configuration before the worker gets it, :func:`admit_sweep` a sweep's
  data before it is planned (planning may load data) and :func:`admit_plan` its runs; each raises
  ``TransferLabError`` with the limit and the variable that sets it, which the pages show as they
  show any start error;
* :func:`limits_caption` is the line a page shows so that users know the limits before they meet one.

The command line never comes here: its user owns the machine.
"""
from __future__ import annotations

from tlcore.config import RunConfig
from tlcore.policy import AppPolicy


def policy() -> AppPolicy:
    """The app's policy: data roots, upload caps and run bounds from the server's environment."""
    return AppPolicy.from_env()


def admit(config: RunConfig) -> None:
    """Refuse (TransferLabError) a run the app may not start: data outside the roots, too many epochs
    or examples."""
    policy().check_config(config)


def admit_sweep(spec) -> None:
    """Refuse a sweep whose data lies outside the roots, before planning reads any of it."""
    from tlcore.sweeps import ComparisonSweep

    if isinstance(spec, ComparisonSweep):  # each arm is a complete configuration
        for _, config in spec.arms:
            policy().check_specs((config.source, config.target), config.data_dir)
        return
    specs = [getattr(spec, name) for name in ("source", "target") if getattr(spec, name, None)]
    policy().check_specs([*specs, *getattr(spec, "sources", ())], spec.base.data_dir)


def admit_plan(plan) -> None:
    """:func:`admit` for every run of a planned sweep (each distinct pair and schedule once)."""
    policy().check_configs(planned.config for planned in plan.configs)


def limits_caption(which: str = "runs") -> str:
    """The limits a page states: ``"runs"`` (Train, sweeps) or ``"uploads"``."""
    p = policy()
    if which == "uploads":
        return f"Limits on this server: a zip of at most {p.max_upload_mb} MiB and {p.max_upload_files} files."
    return (f"Limits on this server for runs started here: at most {p.max_epochs} epochs and "
            f"{p.max_examples} examples per domain (train and test).")
