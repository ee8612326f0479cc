"""Screenshot the runs table of a running MLflow UI with headless Chromium (DevTools protocol).

    python scripts/mlflow_screenshot.py URL [OUT.png] [--experiment ipg-study] [--stage attribution]

The columns come from the stage's saved view that the study keeps on the tracking server
(experiment tag mlflow.sharedViewState.ipg-<stage>, ipg.tracking.views), opened by its URL
`?viewStateShareKey=ipg-<stage>`, as any browser opens it. This script starts Chromium with a
throw-away profile and a DevTools port, closes the assistant panel, loads that URL, waits until
the table has rows, and saves a PNG.
It reads the UI only (REST search + the page); it writes nothing to the tracking store.
Needs /usr/bin/chromium (or $CHROMIUM) and websocket-client (in requirements.lock).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

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


class Page:
    """The first page target of a Chromium started with --remote-debugging-port."""

    def __init__(self, port: int):
        import websocket  # websocket-client

        for _ in range(100):
            try:
                targets = get_json(f"http://127.0.0.1:{port}/json")
                break
            except OSError:
                time.sleep(0.2)
        else:
            fail("chromium did not open its DevTools port")
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.n = 0

    def call(self, method: str, **params) -> dict:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    fail(f"chromium: {method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, seconds: float) -> bool:
        end = time.time() + seconds
        while time.time() < end:
            if self.eval(expression):
                return True
            time.sleep(0.5)
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(base: str, out: Path, experiment: str, stage: str, width: int, height: int) -> str:
    exp_id = experiment_id(base, experiment)
    url = view_url(base, exp_id, stage)
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not shutil.which(chromium):
        fail(f"{chromium} not found; install it (apt-get install chromium) or set CHROMIUM=")
    profile, port = tempfile.mkdtemp(prefix="mlflow-shot-"), free_port()
    proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                             f"--remote-debugging-port={port}", f"--window-size={width},{height}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = Page(port)
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        page.call("Page.navigate", url=f"{base}/")  # same origin: the assistant panel stays shut
        page.wait_for("document.readyState === 'complete'", 30)
        state = {"mlflow.assistant.panelOpen_v1": "false",
                 "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}
        page.eval(f"Object.entries({json.dumps(state)}).forEach(([k, v]) => localStorage.setItem(k, v))")
        page.call("Page.navigate", url=url)
        page.wait_for("document.readyState === 'complete'", 30)
        if not page.wait_for("document.querySelectorAll('[role=row], tr').length > 3", 60):
            fail(f"the runs table at {url} did not fill within 60 s")
        time.sleep(3)  # let the cells and column headers render
        # the app may open its assistant side panel on a first visit whatever localStorage says
        if page.eval(f"(b => b ? (b.click(), true) : false)(document.querySelector('{CLOSE_ASSISTANT}'))"):
            time.sleep(1.5)
        png = page.call("Page.captureScreenshot", format="png")["data"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(profile, ignore_errors=True)
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
