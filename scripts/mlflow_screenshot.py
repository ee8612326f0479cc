"""Screenshot the runs table of a running MLflow UI with headless Chromium (DevTools protocol).

    python scripts/mlflow_screenshot.py URL [OUT.png] [--experiment ipg-study] [--stage attribution]

The columns come from the stage's saved view that the study keeps on the tracking server
(experiment tag mlflow.sharedViewState.ipg-<stage>, ipg.tracking.views), opened by its URL
`?viewStateShareKey=ipg-<stage>`, as any browser opens it. This script starts Chromium with a
throw-away profile and a DevTools port (ipg.tracking.browser), closes the assistant panel,
loads that URL, waits until the table has rows, and saves a PNG.
It reads the UI only (REST search + the page); it writes nothing to the tracking store.
Needs /usr/bin/chromium (or $CHROMIUM) and websocket-client (in requirements.lock).
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from ipg.errors import IPGError
from ipg.tracking.browser import Browser  # headless Chromium over DevTools
from ipg.tracking.views import COLUMNS, view_url  # the study's saved views

CLOSE_ASSISTANT = '[data-component-id="mlflow.assistant.chat_panel.close"]'


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


def get_json(url: str, data: dict | None = None) -> dict:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as reply:
        return json.load(reply)


def experiment_id(base: str, name: str) -> str:
    query = urllib.parse.urlencode({"experiment_name": name})
    try:
        return get_json(f"{base}/api/2.0/mlflow/experiments/get-by-name?{query}")["experiment"]["experiment_id"]
    except Exception as err:  # noqa: BLE001 - any failure means: no UI or no such experiment
        fail(f"no MLflow UI answering on {base} with an experiment {name!r} ({err})")


def screenshot(base: str, out: Path, experiment: str, stage: str, width: int, height: int) -> str:
    exp_id = experiment_id(base, experiment)
    url = view_url(base, exp_id, stage)
    try:
        with Browser(width, height) as browser:
            page = browser.page
            page.open(f"{base}/")  # same origin: the assistant panel stays shut
            state = {"mlflow.assistant.panelOpen_v1": "false",
                     "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}
            page.eval(f"Object.entries({json.dumps(state)}).forEach(([k, v]) => localStorage.setItem(k, v))")
            page.open(url, 30)
            if not page.wait_for("document.querySelectorAll('[role=row], tr').length > 3", 60):
                fail(f"the runs table at {url} did not fill within 60 s")
            time.sleep(3)  # let the cells and column headers render
            # the app may open its assistant side panel on a first visit whatever localStorage says
            if page.eval(f"(b => b ? (b.click(), true) : false)(document.querySelector('{CLOSE_ASSISTANT}'))"):
                time.sleep(1.5)
            png = page.call("Page.captureScreenshot", format="png")["data"]
    except IPGError as err:
        fail(str(err))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(png))
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="the UI, e.g. http://127.0.0.1:5000 (make mlflow / ipg ui)")
    ap.add_argument("out", nargs="?", default="mlflow_runs.png")
    ap.add_argument("--experiment", default="ipg-study")
    ap.add_argument("--stage", default="attribution", choices=sorted(COLUMNS),
                    help="which runs (the 'stage' tag) and which of their columns to show")
    ap.add_argument("--size", default="2000x900", help="window WIDTHxHEIGHT in pixels")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    url = screenshot(args.url.rstrip("/").split("#")[0].rstrip("/"), Path(args.out), args.experiment,
                     args.stage, width, height)
    print(f"wrote {args.out} ({url}, stage {args.stage})")


if __name__ == "__main__":
    main()
