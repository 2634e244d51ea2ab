"""The `tlcore` command line: output formats, errors and the run store."""
import csv
import io
import json
import subprocess
import sys

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


@pytest.mark.parametrize("args,message", [
    (["--source", "mnsit", "--target", "digits"], "unknown dataset 'mnsit'; valid datasets:"),
    (["--source", "digits:rotat=3", "--target", "digits"], "unknown shift 'rotat'; valid shifts:"),
    (["--source", "digits:noise=7", "--target", "digits"], "noise"),
    (["--source", "digits:", "--target", "digits"], ""),
    (["--source", "moons", "--target", "digits"], ""),
    (["--source", "moons", "--target", "blobs"], "only in"),
    (["--source", "digits", "--target", "digits", "--strategy", "magic"], "valid strategys"),
    (["--source", "digits", "--target", "digits", "--strategy", "finetune", "--target-labels", "5000"], "5000"),
    (["--source", "digits", "--target", "digits", "--device", "cuda:3"], "cuda"),
])
def test_bad_input_is_one_clear_line_and_exit_2(capsys, args, message):
    code, out, err = run_cli(capsys, "run", *FAST, *args)  # args last: they may override FAST
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert RunStore().list_runs() == []


def test_gap_json(capsys):
    code, out, _ = run_cli(capsys, "gap", "--source", "moons", "--target", "moons:rotate=90",
                           "--permutations", "50", "--json")
    gap = json.loads(out)
    assert code == 0 and gap["mmd2"] > 0 and gap["p_value"] < 0.05 and 0 < gap["proxy_a_distance"] <= 2


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
