"""The MLflow UI over the study's store, as a child process group bound to 127.0.0.1.

`ui` starts `mlflow ui` in its own process group (loopback by default: the runs are not
served to the network unless a host is passed) and returns a `UIServer` whose `stop()` ends
the server and all its children (uvicorn workers), leaving no zombie.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from ipg.errors import IPGError
from ipg.tracking.store import artifact_root, check_store
from ipg.tracking.views import DEFAULT_VIEW, view_url


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group; uses /proc, else a signal-0 probe."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except ProcessLookupError:
            return []
    members = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            members.append(int(stat.parent.name))
    return members


class UIServer:
    """A running `mlflow ui`: `url`, `pgid`, `wait_ready()`, `stop()`; a context manager."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: str | None):
        self.process, self.url, self.log_path = process, url, log_path
        self.pgid = os.getpgid(process.pid)

    def alive(self) -> bool:
        return bool(_group_members(self.pgid))

    def _log_tail(self) -> str:
        if not self.log_path or not Path(self.log_path).exists():
            return ""
        lines = Path(self.log_path).read_text(errors="replace").strip().splitlines()
        return f"; last log line: {lines[-1][:200]}" if lines else ""

    def wait_ready(self, timeout: float = 90.0) -> "UIServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise IPGError(f"mlflow ui exited with status {self.process.returncode} before "
                               f"serving {self.url}{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise IPGError(f"mlflow ui did not answer on {self.url} within {timeout:.0f}s"
                       f"{self._log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after `timeout` seconds."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.process.poll()  # reap the leader
                if not self.alive():
                    self._reap()
                    return
                time.sleep(0.1)
        self._reap()

    def _reap(self) -> None:
        """Wait for the group leader so its exit status is collected (no zombie left)."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self) -> "UIServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def runs_url(base: str, experiment_id: str, view: str | None = DEFAULT_VIEW) -> str:
    """The experiment's runs table in MLflow 3's UI, opened on a stage's saved view (its
    columns; ipg.tracking.views) or, with view=None, on the browser's own columns.
    `workflowType=machine_learning` picks the "Model training" side: by default MLflow 3.17
    opens every experiment on the GenAI overview (only a click on the sidebar switch is kept in
    localStorage, not the URL's value). On `/runs` no redirect drops `viewStateShareKey`."""
    if view is not None:
        return view_url(base, experiment_id, view)
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def ui(uri: str, host: str = "127.0.0.1", port: int = 5000, log_path: str | None = None,
       wait: bool = True, workers: int = 1) -> UIServer:
    """Start `mlflow ui` on the store in its own process group; return its handle.

    `log_path`: the server's stdout/stderr go there (None: inherit this process's).
    """
    check_store(uri)
    if not port_is_free(host, port):
        raise IPGError(f"port {port} on {host} is in use; pass another one (`ipg ui --port 5001`)")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--artifacts-destination", artifact_root(uri).as_uri(),
           "--host", host, "--port", str(port), "--workers", str(workers)]
    # No GenAI job runner (7 huey consumer processes) unless asked for: browsing runs needs none.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ,
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    finally:
        if out:
            out.close()
    shown = f"[{host}]" if ":" in host else host
    server = UIServer(process, f"http://{shown}:{port}", log_path)
    return server.wait_ready() if wait else server
