"""Headless Chromium over the DevTools protocol, to look at the MLflow UI as a user's browser
does (scripts/mlflow_screenshot.py, the slow browser test of tests/test_tracking_dashboard.py).

`Browser()` starts Chromium with a throw-away profile (nothing in localStorage: a first visit)
and a DevTools port; `.page` drives its first tab: navigate, evaluate JavaScript, wait for a
condition. Needs Debian's chromium (or $CHROMIUM) and websocket-client (requirements.lock).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from ipg.errors import IPGError

CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str:
    """$CHROMIUM, else chromium on PATH; a one-line error naming the fix when there is none."""
    found = shutil.which(os.environ.get("CHROMIUM", CHROMIUM)) or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not found:
        raise IPGError("no chromium found; install it (Debian: apt-get install chromium) or set "
                       "CHROMIUM=/path/to/chromium")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=20) as reply:
        return json.load(reply)


class Page:
    """One tab of a Chromium started with --remote-debugging-port (its first page target)."""

    def __init__(self, port: int, timeout_s: float = 120.0):
        import websocket  # websocket-client

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                targets = _get_json(f"http://127.0.0.1:{port}/json")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise IPGError(f"chromium did not open its DevTools port within {timeout_s:.0f} s") from None
                time.sleep(0.2)
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(url, timeout=timeout_s, suppress_origin=True)
        self.n = 0

    def call(self, method: str, **params) -> dict:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise IPGError(f"chromium: {method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, seconds: float) -> bool:
        """Poll a JavaScript condition every 0.5 s; False if it is still falsy after `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.eval(expression):
                return True
            time.sleep(0.5)
        return False

    def open(self, url: str, seconds: float = 60.0) -> None:
        """Navigate and wait until the document has loaded (the app's scripts then render)."""
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} || document.readyState === 'complete'", 5)
        self.wait_for("document.readyState === 'complete'", seconds)

    def text(self) -> str:
        """The page's visible text (innerText: what a user reads, cells and headers)."""
        return self.eval("document.body ? document.body.innerText : ''") or ""

    def href(self) -> str:
        """The page's URL after the app's own redirects."""
        return self.eval("location.href")


class Browser:
    """Headless Chromium with a throw-away profile; a context manager whose exit ends it."""

    def __init__(self, width: int = 1600, height: int = 1000, timeout_s: float = 120.0):
        self.profile, port = tempfile.mkdtemp(prefix="ipg-chromium-"), free_port()
        self.proc = subprocess.Popen(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={self.profile}",
             f"--remote-debugging-port={port}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.page = Page(port, timeout_s)
            self.page.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                           deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
