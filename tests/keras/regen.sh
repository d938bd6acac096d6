#!/usr/bin/env bash
# One command to (re)generate tests/keras/fixtures with real Keras:
#   bash tests/keras/regen.sh            # all cases
#   bash tests/keras/regen.sh --only c16 # just the cases whose name starts with c16 (no manifest)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${KERAS_VENV:-$ROOT/.venv-keras}"

bash "$HERE/setup_venv.sh"
export KERAS_BACKEND=tensorflow
export TF_ENABLE_ONEDNN_OPTS=0
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
"$VENV/bin/python" "$HERE/make_fixtures.py" "$@"
echo "fixtures: $(du -sh --apparent-size "$HERE/fixtures" | cut -f1) (apparent), $(find "$HERE/fixtures" -type f | wc -l) files"
