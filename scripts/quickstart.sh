#!/usr/bin/env bash
# FinBI quickstart on the embedded default (no AWS, no network beyond PyPI):
# create .venv, load the bundled sample, run the whole pipeline, then serve the Dagster UI
# (with its daemon, so the sensor and schedule run) and the dashboard until Ctrl-C.
#   --no-serve   stop after the run (for scripts and CI)
set -euo pipefail
cd "$(dirname "$0")/.."
serve=1
[ "${1:-}" = "--no-serve" ] && serve=0

python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

export FINBI_HOME=${FINBI_HOME:-$PWD/.finbi}
# Re-running is safe: a re-loaded file is a new version of the same key and replaces it.
.venv/bin/finbi load --source interactions data/interactions.csv
.venv/bin/finbi load --source sales data/sales.csv
.venv/bin/finbi run

if [ "$serve" = 1 ]; then
  exec .venv/bin/finbi serve
fi
