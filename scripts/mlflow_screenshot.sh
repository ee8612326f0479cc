#!/usr/bin/env bash
# Screenshot the runs table of a running MLflow UI with headless Chromium (installs nothing).
#
#   scripts/mlflow_screenshot.sh URL [OUT.png] [--experiment NAME] [--stage STAGE] [--size WxH]
#
# URL: the UI, e.g. http://127.0.0.1:5000 (from `make mlflow` / `ipg ui`). Shows the runs of one
# stage (default attribution) with their param and metric columns; see scripts/mlflow_screenshot.py.
# Needs /usr/bin/chromium (Debian: apt-get install chromium) and the venv (websocket-client).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$here/../.venv/bin/python"
[[ -x "$python" ]] || python=python3
exec "$python" "$here/mlflow_screenshot.py" "$@"
