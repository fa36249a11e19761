# Sourced by scripts/test and scripts/demo: installs the Python environment and the npm toolchain
# when they are missing or out of date. Safe to run any number of times.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

python_bin="${PYTHON:-python3}"
if ! "$python_bin" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "error: Python 3.11 or newer is required (found: $("$python_bin" --version 2>&1)); set PYTHON to its path" >&2
    exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found; install Node.js 20 or newer" >&2
    exit 1
fi

# A stamp holding the hash of the install inputs makes reinstalling happen only when they change.
python_stamp=".venv/.pmsr-install-stamp"
# The package list is part of the hash because an editable install maps only the packages that
# existed when it ran.
python_inputs_hash="$( (cat pyproject.toml; ls -d -- */__init__.py) | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$python_bin" -m venv .venv
fi
if [ ! -f "$python_stamp" ] || [ "$(cat "$python_stamp")" != "$python_inputs_hash" ]; then
    echo "==> installing Python packages into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    echo "$python_inputs_hash" > "$python_stamp"
fi

node_stamp="node_modules/.pmsr-install-stamp"
node_inputs_hash="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [ ! -f "$node_stamp" ] || [ "$(cat "$node_stamp")" != "$node_inputs_hash" ]; then
    echo "==> installing the Solidity compiler and Foundry from package-lock.json"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$node_inputs_hash" > "$node_stamp"
fi

export PATH="$repo_root/node_modules/.bin:$repo_root/.venv/bin:$PATH"
