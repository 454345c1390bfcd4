#!/usr/bin/env bash
# Make (once) a separate virtual environment with tensorflow-cpu, used only by
# tests/convert/test_tensorflow.py to prove that TensorFlow reads what
# `autodl format` writes. TensorFlow is never a dependency of the project.
# Prints the environment's python on stdout (progress goes to stderr):
#   export AUTODL_TF_PYTHON="$(bash .ci/tf-venv.sh)"
set -euo pipefail
VENV="${AUTODL_TF_VENV:-$HOME/.cache/autodl-tfvenv}"
PY="$VENV/bin/python"
if ! "$PY" -c "import tensorflow" >/dev/null 2>&1; then
  echo "tf-venv: creating $VENV with tensorflow-cpu (once)" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$PY" -m pip install --quiet --upgrade pip >&2
  "$PY" -m pip install --quiet tensorflow-cpu >&2
fi
echo "$PY"
