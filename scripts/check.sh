#!/usr/bin/env bash
# The whole check suite: format, lint, types, tests. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null || python3 -m pip install --quiet "uv==0.13.9"
# Bytecode compiled once, here: where PYTHONDONTWRITEBYTECODE is set (as on the machines this was
# developed on) every test subprocess would otherwise compile scikit-learn, pandas and matplotlib
# from source again, about 20 s each. A no-op when the environment is compiled already.
uv sync --frozen --all-packages --quiet --compile-bytecode
echo "== format (ruff format --check) (at ${SECONDS} s)"
uv run --frozen ruff format --check .
echo "== lint (ruff check) (at ${SECONDS} s)"
uv run --frozen ruff check .
echo "== types (mypy --strict) (at ${SECONDS} s)"
uv run --frozen mypy
echo "== tests (pytest) (at ${SECONDS} s)"
# loadgroup: the image tests (xdist group "image") run on one worker, one after another, while
# the other worker runs the rest. --durations: the CI log lists the slowest tests (the run has a
# 20-minute limit).
uv run --frozen pytest -n 2 --dist loadgroup --durations=25 "$@"
echo "== all checks passed in ${SECONDS} s"
