#!/usr/bin/env bash
# Idempotently create the Python environment used to (re)generate tests/keras/fixtures.
#   bash tests/keras/setup_venv.sh        # creates /work/main/.venv-keras (or $KERAS_VENV)
# A second run with an unchanged requirements.txt does nothing (stamp file).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${KERAS_VENV:-$ROOT/.venv-keras}"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.mhac-requirements.stamp"
PYTHON="${PYTHON:-python3}"

export KERAS_BACKEND=tensorflow
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

if [ -f "$STAMP" ] && cmp -s "$STAMP" "$REQ" && [ -x "$VENV/bin/python" ]; then
    echo "setup_venv: $VENV is up to date"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup_venv: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"

# Smoke test: Keras 3 on the TensorFlow backend, plus tf_keras.
"$VENV/bin/python" - <<'PY'
import keras, tensorflow as tf, tf_keras
assert keras.backend.backend() == "tensorflow", keras.backend.backend()
print("setup_venv: keras", keras.__version__, "| tensorflow", tf.__version__,
      "| tf_keras", tf_keras.__version__)
PY

cp "$REQ" "$STAMP"
echo "setup_venv: done"
