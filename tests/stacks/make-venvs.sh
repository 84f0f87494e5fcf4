#!/usr/bin/env bash
# The model servers users run, each in its own virtual environment (their pins conflict with each other):
# KServe's and MLServer's Python servers with ONNX Runtime. tests/test_stacks.py starts them on loopback.
# Run once from the repository root; .ci/run runs it before the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The versions the runtimes were written against (their APIs change between releases).
declare -A PINS=([kserve]="kserve==0.21.0" [mlserver]="mlserver==1.7.1")
for stack in kserve mlserver; do
    venv=".test-venvs/$stack"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $stack, onnxruntime" 2>/dev/null; then continue; fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install --progress-bar off "${PINS[$stack]}" onnxruntime==1.32.0 numpy
done
