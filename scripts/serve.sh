#!/usr/bin/env bash
# Start the training worker (Huey consumer) and the Streamlit app together; stop both together.
# serve.py is app.py plus the live-feed route the Train page polls (README, Performance).
# The web server runs under `nice` (SERVER_NICE, default 5) so that on a small machine the
# training worker keeps the CPU first: many open Train tabs slow the pages, not the run
# (README, Performance).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8501}
SERVER_NICE=${SERVER_NICE:-5}
"$PY" -m cnnlab worker &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT INT TERM
echo "cnnlab: open http://localhost:$PORT  (Ctrl+C stops the app and the worker)"
nice -n "$SERVER_NICE" "$PY" -m streamlit run serve.py --server.port "$PORT"
