"""The `tlcore` command line: output formats, errors and the run store."""
import csv
import io
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tlcore.cli import main
from tlcore.runs import RunStore

FAST = ["--epochs", "1", "--batch-size", "32", "--device", "cpu"]


def run_cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_json_has_the_promised_keys_and_ntg(capsys):
    code, out, err = run_cli(capsys, "run", "--source", "moons", "--target", "moons:rotate=30",
                             "--strategy", "dann", "--target-labels", "2", "--json", *FAST)
    assert code == 0, err
    result = json.loads(out)
    for key in ("run_id", "strategy", "source_accuracy", "target_accuracy", "ntg"):
        assert key in result
    assert result["ntg"] == pytest.approx(result["target_only_accuracy"] - result["target_accuracy"])
    assert "steps on" in err  # the progress bar goes to stderr
    store = RunStore()
    assert {r.strategy for r in store.list_runs()} == {"dann", "target_only"}
    assert store.get_run(result["run_id"]).metrics["baseline_run_id"] == result["baseline_run_id"]


def test_baseline_is_reused(capsys):
    args = ["run", "--source", "moons", "--target", "moons:rotate=30", "--target-labels", "2", "--json", *FAST]
    first = json.loads(run_cli(capsys, *args, "--strategy", "mmd")[1])
    second = json.loads(run_cli(capsys, *args, "--strategy", "coral")[1])
    assert first["baseline_run_id"] == second["baseline_run_id"]
    assert len(RunStore().list_runs(strategy="target_only")) == 1


def test_no_budget_means_no_ntg(capsys):
    code, out, _ = run_cli(capsys, "run", "--source", "moons", "--target", "moons:rotate=30", "--json", *FAST)
    assert code == 0 and json.loads(out)["ntg"] is None


# (args, text the one error line contains). Each case runs the CLI as a user meets it: a separate
# process, so a crash shows as a traceback on stderr instead of raising inside the test.
BAD_INPUT = [
    (["run", *FAST, "--source", "mnsit", "--target", "digits"], "unknown dataset 'mnsit'; valid datasets:"),
    (["run", *FAST, "--source", "digits:rotat=3", "--target", "digits"], "unknown shift 'rotat'; valid shifts:"),
    (["run", *FAST, "--source", "digits:noise=7", "--target", "digits"], "noise"),
    (["run", *FAST, "--source", "digits:", "--target", "digits"], "empty shift"),
    (["run", *FAST, "--source", "moons", "--target", "digits"], "choose two vector or two image datasets"),
    (["run", *FAST, "--source", "digits", "--target", "digits", "--strategy", "magic"], "valid strategies"),
    (["run", *FAST, "--source", "digits", "--target", "digits", "--strategy", "finetune", "--target-labels", "5000"],
     "5000"),
    (["run", *FAST, "--source", "digits", "--target", "digits", "--device", "cuda:3"], "cuda"),
    # comparisons with NaN are false, so a range check alone lets NaN through (issue 14, item 5)
    (["run", *FAST, "--source", "moons", "--target", "moons", "--lr", "nan"], "lr=nan must be a finite number"),
    (["run", *FAST, "--source", "moons", "--target", "moons", "--strategy", "dann", "--param", "weight=NaN"],
     "weight=nan must be a finite number"),
    (["gap", "--source", "moons", "--target", "moons", "--permutations", "0"], "--permutations must be between 1"),
    (["gap", "--source", "moons", "--target", "moons", "--permutations", "1000000000"], "and 10000"),
    (["gap", "--source", "moons", "--target", "moons", "--max-points", "1"], "--max-points must be between 2"),
    (["runs", "--csv", "/proc/nope/x.csv"], "No such file or directory: /proc/nope"),
]


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TRANSFER_LAB_HOME": str(home)}

    def run(args):
        return subprocess.run([sys.executable, "-m", "tlcore", *args], capture_output=True, text=True, env=env,
                              cwd=Path(__file__).resolve().parents[1], timeout=300)

    with ThreadPoolExecutor(max_workers=4) as pool:  # each process mostly imports torch: run a few at once
        procs = list(pool.map(run, [args for args, _ in BAD_INPUT]))
    for (args, message), proc in zip(BAD_INPUT, procs):
        case = (" ".join(args), proc.returncode, proc.stdout, proc.stderr)
        assert proc.returncode == 2 and proc.stdout == "", case
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], case
    assert RunStore(home / "runs.sqlite").list_runs() == []


def test_a_class_mismatch_is_explained_without_a_traceback(capsys):
    code, out, err = run_cli(capsys, "run", *FAST, "--source", "moons", "--target", "blobs")
    assert code == 2 and out == "" and err.startswith("error: ") and "only in source" in err
    assert RunStore().list_runs() == []


def test_gap_json(capsys):
    code, out, _ = run_cli(capsys, "gap", "--source", "moons", "--target", "moons:rotate=90",
                           "--permutations", "50", "--json")
    gap = json.loads(out)
    # a linear domain classifier cannot see a rotation about the origin, so the PAD may well be 0 here
    assert code == 0 and gap["mmd2"] > 0 and gap["p_value"] < 0.05 and 0 <= gap["proxy_a_distance"] <= 2
    # the app's seeded sample (tlcore.inspection.GAP_POINTS per domain), said in the output
    assert (gap["n_source"], gap["of_source"], gap["n_target"], gap["of_target"]) == (500, 1000, 500, 1000)


def test_datasets_lists_builtins_and_shifts(capsys):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0
    for name in ("moons", "blobs", "digits", "rotate", "invert", "texture", "label_noise", "permute", "prior"):
        assert name in out


def test_runs_list_csv_and_delete(capsys, tmp_path):
    run_cli(capsys, "run", "--source", "moons", "--target", "moons:rotate=30", "--json", *FAST)
    code, out, _ = run_cli(capsys, "runs", "--csv", "-")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 1 and float(rows[0]["target_accuracy"]) >= 0
    run_id = rows[0]["id"]
    assert run_id in run_cli(capsys, "runs")[1]
    assert run_cli(capsys, "runs", "--delete", run_id)[0] == 0
    assert RunStore().list_runs() == []
    code, _, err = run_cli(capsys, "runs", "--delete", "nosuchrun")
    assert code == 2 and "nosuchrun" in err


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "tlcore", "datasets", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "digits" in {d["name"] for d in json.loads(proc.stdout)["datasets"]}


def test_run_data_mode_is_recorded_and_a_bad_one_is_refused(capsys):
    code, out, err = run_cli(capsys, "run", "--source", "moons", "--target", "moons:rotate=30", "--json",
                             "--data-mode", "stream", "--loader-workers", "0", *FAST)
    assert code == 0, err
    run = RunStore().get_run(json.loads(out)["run_id"])
    assert run.config["data_mode"] == "stream" and run.metrics["data_mode"] == "stream"
    with pytest.raises(SystemExit):
        main(["run", "--source", "moons", "--target", "moons", "--data-mode", "lazy"])
    assert "invalid choice: 'lazy'" in capsys.readouterr().err


def test_a_heterogeneous_pair_runs_only_with_a_strategy_that_accepts_it(capsys):
    pair = ("--source", "blobs:prior=5", "--target", "blobs:prior=5,embed=20")
    code, _, err = run_cli(capsys, "run", *pair, "--strategy", "dann", "--json", *FAST)
    assert code == 2 and "20" in err and "accepts heterogeneous pairs" in err and "gromov" in err
    code, out, err = run_cli(capsys, "run", *pair, "--strategy", "gromov", "--param", "max_points=60",
                             "--param", "restarts=1", "--json", *FAST)
    assert code == 0, err
    result = json.loads(out)
    assert math.isnan(result["source_accuracy"]) and 0.0 <= result["target_accuracy"] <= 1.0
    run = RunStore().get_run(result["run_id"])
    assert any("max_points=60" in line for line in run.metrics["preprocessing"])
