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

# The set-up says what it is doing: what it installs and how long that takes, then pip's output
# cut to a few lines (each package's name and version, and the size of any download of 1 MB or
# more) and a word before the long silent step. pip's warnings and errors (stderr) pass untouched;
# bash's pipefail keeps a failing pip failing make. Measured 2026-12-04 on fresh clones (2 cores,
# torch's wheel on local disk, no pip cache): 59, 64 and 76 s, 73 s with PIP_NO_CACHE_DIR=1;
# about 5 s making the venv, 10 s collecting, 50-60 s installing, 3-4 s for zeptogpt itself.
# 1.4 GB installed from about 330 MB of wheels (torch 192 MB). The TransformerLens extra (issue 29)
# adds 62 packages, about 125 MB of wheels, 580 MB installed and 45 s (measured alone); Ray
# (issue 30) about 70 MB of wheels, 240 MB installed, 11 s. A fresh clone's whole set-up took
# about 100 s on 2026-12-04 (129 packages).
$(STAMP): SHELL := bash
$(STAMP): requirements.txt pyproject.toml
	@if test -x $(BIN)/python; then \
	  echo "Updating $(VENV) (requirements.txt or pyproject.toml changed)"; \
	else \
	  echo "Setting up $(VENV), first run only (2 to 2.5 minutes on a fast network;" \
	    "later runs reuse it):"; \
	  echo "  torch $$(sed -n 's/^torch==\([^ #]*\).*/\1/p' requirements.txt) (CPU build) and" \
	    "$$(( $$(grep -c '^[A-Za-z]' requirements.txt) - 1 )) other pinned packages from" \
	    "requirements.txt, plus their"; \
	  echo "  dependencies: about 525 MB to download, 2.3 GB installed."; \
	  echo "  $(PYTHON) -m venv $(VENV)"; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@echo "  pip install -r requirements.txt"
	@set -o pipefail; $(BIN)/python -m pip install -r requirements.txt | { \
	n=0; row=; t=; while IFS= read -r line; do \
	  case "$$line" in \
	    "Processing "*|"  Downloading "*|"  Using cached "*) \
	      f=$${line%% (from *}; f=$${f%% (*}; f=$${f##* }; f=$${f##*/}; \
	      case "$$f" in *.whl) v=$${f#*-}; f="$${f%%-*} $${v%%-*}";; esac; \
	      n=$$((n + 1)); test $$(( $${#row} + $${#f} )) -lt 90 || { echo "   $$row"; row=; }; \
	      case "$$line" in \
	        *" MB)"|*" GB)") echo "   $$row $$f ($${line##* (},"; row=;; \
	        *) row="$$row $$f,";; \
	      esac;; \
	    "Installing collected packages: "*) \
	      test -z "$$row" || echo "   $${row%,}"; \
	      case "$$line" in \
	        *" torch,"*|*" torch") t=" (about 50 s with nothing to show: torch is 750 MB)";; \
	      esac; \
	      echo "  installing these $$n packages into $(VENV)$$t...";; \
	    "Successfully installed "*) echo "  installed $$n packages";; \
	  esac; \
	done; }
	@echo "  pip install --no-deps --no-build-isolation -e .   (zeptogpt itself, editable)"
	@$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)
	@echo "$(VENV) is ready."

clean:
	rm -rf $(VENV) runs
