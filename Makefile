# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(STAMP)

## Grade the bundled exp1 example submissions; reports go to out/demo/exp1/<example>/.
demo: $(STAMP)
	$(BIN)/grader demo exp1 --out out/demo

## The whole test suite (CI runs exactly this).
test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check grader tests assignments solutions

clean:
	rm -rf $(VENV) out
