"""Does watching a run slow it down? One run's wall time with 0, 1 and 4 viewers, against the CLI's.

    python benchmarks/bench_viewers.py [--epochs 60] [--viewers 0 1 4] [--no-gc-compare]

Issue 14: with four viewers a 63 s moons run took 550 s, because every viewer's live fragment
reran twice a second and Streamlit ran a full ``gc.collect(2)`` after each (150-200 ms with the
app's imports). ``.streamlit/config.toml`` turns that collection off (``runner.postScriptGC``)
and the live view refreshes only as often as the run logs (pages/_live.refresh_interval).

Each configuration: a fresh ``streamlit run app.py`` (its own Transfer Lab home; warm-ups off, so
that UMAP's compilation does not compete), one headless Chromium tab that sets the epochs and
presses Start, then ``viewers`` tabs on the run's Train page (the starter's tab is one of them; with
0 viewers it is closed at once). The run's own ``elapsed_s`` (the engine's clock, start to end)
is divided by the same run's from ``tlcore run`` in a subprocess, made just before it.
With ``--gc-compare`` (the default) the 4-viewer case runs a second time with
``--runner.postScriptGC true`` (Streamlit's default), for the figure with and without.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
HOST = "127.0.0.1"
RUN = ["--source", "moons", "--target", "moons:rotate=30", "--strategy", "dann", "--seed", "0"]


def cli_elapsed(epochs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="transfer-lab-bench-") as home:
        out = subprocess.run([sys.executable, "-m", "tlcore", "run", *RUN, "--epochs", str(epochs), "--json"],
                             cwd=ROOT, env={**os.environ, "TRANSFER_LAB_HOME": home}, capture_output=True,
                             text=True, check=True, timeout=3600)
    return float(json.loads(out.stdout)["elapsed_s"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def app_elapsed(epochs: int, viewers: int, post_script_gc: bool) -> dict:
    from playwright.sync_api import sync_playwright

    from tlcore.runs import RunStore

    with tempfile.TemporaryDirectory(prefix="transfer-lab-bench-") as home:
        port = _free_port()
        env = {**os.environ, "TRANSFER_LAB_HOME": home, "TRANSFER_LAB_WARMUP": "0"}
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", HOST, "--runner.postScriptGC", str(post_script_gc).lower()],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://{HOST}:{port}"
        try:
            deadline = time.time() + 120
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.3)
                if time.time() > deadline:
                    raise RuntimeError("streamlit did not start")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                starter = browser.new_page(viewport={"width": 1440, "height": 1200})
                starter.goto(f"{url}/train", timeout=120_000)
                epochs_box = starter.get_by_role("spinbutton", name="Epochs")
                epochs_box.wait_for(timeout=120_000)
                epochs_box.fill(str(epochs))
                epochs_box.press("Tab")
                starter.wait_for_timeout(1500)
                starter.locator(".st-key-btn-train-start button").click()
                starter.wait_for_url("**/train?*run=*", timeout=60_000)
                run_id = starter.url.split("run=")[1].split("&")[0]
                tabs = [starter]
                if viewers == 0:
                    starter.close()
                    tabs = []
                for _ in range(max(0, viewers - 1)):
                    tab = browser.new_page(viewport={"width": 1440, "height": 1200})
                    tab.goto(f"{url}/train?run={run_id}", timeout=120_000)
                    tabs.append(tab)
                store = RunStore(Path(home) / "runs.sqlite")
                while store.get_run(run_id).status in ("queued", "running"):
                    time.sleep(0.5)
                record = store.get_run(run_id)
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
    return {"status": record.status, "elapsed_s": float(record.metrics["elapsed_s"])}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--viewers", type=int, nargs="+", default=[0, 1, 4])
    parser.add_argument("--no-gc-compare", action="store_true")
    args = parser.parse_args()
    figures = {"epochs": args.epochs, "cpus": os.cpu_count(), "load_average_1min_at_start": os.getloadavg()[0]}
    cases = [(n, False) for n in args.viewers] + ([] if args.no_gc_compare else [(max(args.viewers), True)])
    for viewers, gc_on in cases:
        # The CLI's run just before each app run: on a shared machine the load drifts within minutes,
        # so each ratio compares two runs made back to back.
        cli = cli_elapsed(args.epochs)
        out = app_elapsed(args.epochs, viewers, gc_on)
        name = f"app_{viewers}_viewers" + ("_postScriptGC_true" if gc_on else "")
        figures[name] = {**out, "elapsed_s": round(out["elapsed_s"], 2), "cli_elapsed_s": round(cli, 2),
                         "ratio_to_cli": round(out["elapsed_s"] / cli, 2),
                         "load_average_1min": round(os.getloadavg()[0], 1)}
        print(name, json.dumps(figures[name]), flush=True)
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
