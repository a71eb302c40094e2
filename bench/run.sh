#!/usr/bin/env bash
# Both benchmarks, peers included: installs what they need (check-jsonschema, express, wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q -e '.[bench]'
(cd bench/express && npm install --no-audit --no-fund --silent)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
.venv/bin/python bench/serve_bench.py --seconds 10
.venv/bin/python bench/stall_bench.py --seconds 10
.venv/bin/python bench/batch_bench.py
.venv/bin/python bench/fuzz.py --requests 100000
.venv/bin/python bench/lint_bench.py --runs 3
