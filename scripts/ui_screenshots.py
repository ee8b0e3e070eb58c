"""Screenshots of the MLflow UI over a store's newest study, taken with headless Chromium.

    python scripts/ui_screenshots.py --tracking-uri sqlite:///outputs/mlflow.db \\
        --experiment animalseg --output docs/images/mlflow

Starts ``mlflow ui`` on 127.0.0.1 over the store, then, with the machine's Chromium driven by
Playwright, shoots the runs table (the newest sweep's
parent with its children nested under it), the first child's chart page, its logged model's page
and, when the model is registered, the registered version's page. The last line is JSON: each
picture's path and the URL it shows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.errors import ConfigError
from animalseg.scripting import exit_on_user_error

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = "1600,1000"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_ui(tracking_uri: str, port: int) -> subprocess.Popen:
    """``mlflow ui`` on 127.0.0.1:``port``, once it answers."""
    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [str(mlflow), "ui", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise ConfigError(f"mlflow ui did not answer on port {port} within 120 s")


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError("no headless browser: install Debian's chromium (apt-get install chromium)")


def shoot(url: str, path: Path, expand_rows: bool = False, wait_ms: int = 6000) -> None:
    """One page as PNG, as a fresh browser shows it, with MLflow's assistant panel closed (it
    covers a third of the page) and, ``expand_rows``, a sweep's children unfolded under its parent
    in the runs table. Playwright drives the machine's Chromium (no browser download)."""
    from playwright.sync_api import sync_playwright

    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in WINDOW.split(","))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser(), args=["--no-sandbox"])
        try:
            page = chromium.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_timeout(wait_ms)  # the UI renders in JavaScript after its requests
            close = page.get_by_role("button", name="Close", exact=True)
            if close.count():
                close.first.click()
            if expand_rows:
                page.locator("[role=gridcell] button").first.click()  # the parent row's expander
            page.wait_for_timeout(1500)
            page.screenshot(path=str(path))
        finally:
            chromium.close()


def pages(tracking_uri: str, experiment_name: str, base: str) -> dict[str, str]:
    """The URLs to shoot, from the store: the runs table, a child's charts, its model's pages."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ConfigError(f"no experiment {experiment_name!r} in {tracking_uri}")
    eid = experiment.experiment_id
    parents = client.search_runs([eid], "tags.run_kind = 'study'", order_by=["start_time DESC"], max_results=1)
    if not parents:
        raise ConfigError(f"no study (sweep) in experiment {experiment_name!r}: run one with train.py -m")
    parent = parents[0].info.run_id
    children = client.search_runs([eid], f"tags.`mlflow.parentRunId` = '{parent}'", order_by=["start_time ASC"])
    child = children[0]
    urls = {
        "runs_table": f"{base}/#/experiments/{eid}/runs",
        "run_charts": f"{base}/#/experiments/{eid}/runs/{child.info.run_id}/model-metrics",
        "parent_run": f"{base}/#/experiments/{eid}/runs/{parent}",
    }
    models = [m for m in client.search_logged_models([eid]) if m.source_run_id == child.info.run_id]
    if models:
        urls["logged_model"] = f"{base}/#/experiments/{eid}/models/{models[0].model_id}"
    versions = client.search_model_versions(f"run_id = '{child.info.run_id}'")
    if versions:
        urls["registered_model"] = f"{base}/#/models/{versions[0].name}/versions/{versions[0].version}"
    return urls


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--experiment", default="animalseg")
    parser.add_argument("--output", type=Path, default=Path("docs/images/mlflow"))
    args = parser.parse_args(argv)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_ui(args.tracking_uri, port)
    try:
        shots = {}
        for name, url in pages(args.tracking_uri, args.experiment, base).items():
            path = args.output / f"{name}.png"
            shoot(url, path, expand_rows=name == "runs_table")
            shots[name] = {"path": str(path), "url": url.removeprefix(base)}
            print(f"{name:<17} {path}  ({url})")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(shots))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
