#!/usr/bin/env bash
# Start the training worker (Huey consumer) and the Streamlit app together; stop both together.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8501}
"$PY" -m cnnlab worker &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT INT TERM
echo "cnnlab: open http://localhost:$PORT  (Ctrl+C stops the app and the worker)"
"$PY" -m streamlit run app.py --server.port "$PORT"
