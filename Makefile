# `make run`: set up .venv and run the main job. `make test`: set up .venv and run every test.
# The set-up happens once; later calls reuse .venv until requirements.txt or pyproject.toml change.
# `make serve`: the local web page (after a `zeptogpt train`). `make bench`: the core and engine
# timings; `make bench-serve`: the web page's.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-serve serve clean

run: $(STAMP)
	$(BIN)/zeptogpt

test: $(STAMP)
	$(BIN)/ruff check src tests bench notebooks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench notebooks

bench: $(STAMP)
	$(BIN)/python bench/bench_core.py
	$(BIN)/python bench/bench_engine.py

bench-serve: $(STAMP)
	$(BIN)/python bench/bench_serve.py

serve: $(STAMP)
	$(BIN)/zeptogpt serve

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs
