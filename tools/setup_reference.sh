#!/usr/bin/env bash
# Set up (or check) the reference DreamerV3 and its environment for the developer tools:
# danijar/dreamerv3 at commit e3f0224, extracted outside this repository, and a Python 3.11 venv
# with the CPU build of the jax it pins plus its pure-Python dependencies.
#
#   bash tools/setup_reference.sh [REFERENCE_DIR [REFENV_DIR]]   # defaults: ../reference ../refenv
#   bash tools/setup_reference.sh --check [REFERENCE_DIR [REFENV_DIR]]
#
# Steps already done (the checkout's files present, the venv's python present) are skipped, so it
# can be rerun. --check changes nothing: it imports the reference in its venv and prints the
# versions, exit 1 if that fails. Needs git, python3.11 and network access for the first run.
# Used by bench/compare_reference.py and tools/reference_equivalence.py (see tools/README.md);
# CI does not run it.
set -euo pipefail

COMMIT=e3f0224
REPO=https://github.com/danijar/dreamerv3
check=0
if [[ "${1:-}" == "--check" ]]; then check=1; shift; fi
beside=$(cd "$(dirname "$0")/../.." && pwd)  # the folder that holds this repository
reference=${1:-$beside/reference}
refenv=${2:-$beside/refenv}

if [[ $check == 0 ]]; then
  if [[ ! -f "$reference/dreamerv3/agent.py" ]]; then
    clone=$(mktemp -d)
    git clone --quiet "$REPO" "$clone/dreamerv3"
    mkdir -p "$reference"
    git -C "$clone/dreamerv3" archive "$COMMIT" | tar -x -C "$reference"
    rm -rf "$clone"
  fi
  if [[ ! -x "$refenv/bin/python" ]]; then
    python3.11 -m venv "$refenv"
  fi
  "$refenv/bin/pip" install --quiet "jax==0.4.33" "jaxlib==0.4.33" "numpy<2" "optax==0.2.5" "chex==0.1.90" \
    einops jaxtyping "ninjax==3.6.3" "elements==3.22.4" "granular>=0.20.3" "portal>=3.5.0" "scope>=0.4.4" \
    tqdm colored_traceback ruamel.yaml
fi

PYTHONPATH="$reference" "$refenv/bin/python" - <<'PY'
from importlib.metadata import version
import dreamerv3.agent  # noqa: F401  (the reference's agent imports)
import jax
names = ("jax", "jaxlib", "numpy", "optax", "chex", "ninjax", "elements")
print("reference ok:", ", ".join(f"{n} {version(n)}" for n in names), "backend", jax.default_backend())
PY
