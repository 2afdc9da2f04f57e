#!/usr/bin/env bash
# Validate a GPU machine in one command, in under 8 minutes, with no network and without installing anything:
#   scripts/gpu_check.sh [OUT_DIR] [--allow-cpu] [--budget-s SECONDS]
# Runs with the Python on PATH (or $PYTHON) and the packages already installed; scripts/gpu_check.py says what
# it runs and writes (OUT_DIR, default ./gpu_check). Exit 3: no GPU device (--allow-cpu tests the script on a CPU).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$(command -v python || command -v python3)}"
exec "$python" "$here/gpu_check.py" "$@"
