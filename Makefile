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

SHARED := ../shared/datasets

## Batch-grade the bundled example submissions of each assignment as a class: out/demo/<assignment>/ gets
## summary.html, gradebook.csv and students/<example>/report.html (see README, "Grading a class").
## exp2, softmax, lenet and rnn need datasets: graded when ../shared/datasets (or data/) provides them.
demo: $(STAMP)
	$(BIN)/grader batch exp1 examples/exp1 --out out/demo/exp1 --workers 2
	@if [ -f $(SHARED)/materialize.py ]; then $(BIN)/python $(SHARED)/materialize.py data; fi
	@if [ -f data/cifar-10-batches-py/test_batch ] && [ -f data/timemachine.txt ]; then \
	  for a in exp2 softmax lenet rnn; do \
	    $(BIN)/grader batch $$a examples/$$a --out out/demo/$$a --data-root data --workers 2 || exit 1; done; \
	 else echo "exp2, softmax, lenet, rnn skipped: no datasets under data/ (see grader data prepare)"; fi

## The whole test suite (CI runs exactly this).
test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check grader tests assignments solutions bench
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) out
