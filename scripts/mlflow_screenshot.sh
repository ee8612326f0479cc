#!/usr/bin/env bash
# Screenshot the runs page of a running MLflow UI with headless Chromium (installs nothing).
#
#   scripts/mlflow_screenshot.sh URL [OUT.png] [EXPERIMENT]
#
# URL: the UI, e.g. http://127.0.0.1:5000 (from `make mlflow` / `ipg ui`), or a full page URL
# with a '#/' route, which is used as is. Otherwise the runs page of EXPERIMENT (default
# ipg-study) is shot; its id is looked up through the REST API. OUT defaults to mlflow_runs.png.
# Needs /usr/bin/chromium (Debian: apt-get install chromium) and curl; talks to URL only.
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
URL="${1%/}"
OUT="${2:-mlflow_runs.png}"
EXPERIMENT="${3:-ipg-study}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

[[ -x "$CHROMIUM" ]] || { echo "error: $CHROMIUM not found; install it (apt-get install chromium) or set CHROMIUM=" >&2; exit 1; }
command -v curl >/dev/null || { echo "error: curl not found" >&2; exit 1; }

if [[ "$URL" != *"#/"* ]]; then
    reply=$(curl -fsS --max-time 20 --get "$URL/api/2.0/mlflow/experiments/get-by-name" \
        --data-urlencode "experiment_name=$EXPERIMENT") \
        || { echo "error: no MLflow UI answering on $URL (or no experiment '$EXPERIMENT')" >&2; exit 1; }
    id=$(sed -n 's/.*"experiment_id": *"\([^"]*\)".*/\1/p' <<<"$reply")
    [[ -n "$id" ]] || { echo "error: could not read the id of '$EXPERIMENT' from $reply" >&2; exit 1; }
    URL="$URL/#/experiments/$id/runs"
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$OUT")"
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size=1400,900 --virtual-time-budget=15000 \
    --screenshot="$OUT" "$URL" >"$profile/chromium.log" 2>&1 \
    || { echo "error: chromium failed; its log:" >&2; tail -5 "$profile/chromium.log" >&2; exit 1; }
[[ -s "$OUT" ]] || { echo "error: chromium wrote no screenshot" >&2; exit 1; }
echo "wrote $OUT ($URL)"
