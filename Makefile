# edgeclf — the two commands a new user types are `make train export` and `make test`.
# Every target installs what it needs on first use (.venv + a stamp file), so a fresh clone works.

PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.edgeclf-installed
DATA        ?= data/demo
RUN         ?= runs/latest
PRESET      ?= default
TRAIN_ARGS  ?=
EXPORT_ARGS ?=
PYTEST_ARGS ?=

.PHONY: all install train export benchmark test test-slow lint format demo-data clean

all: train export

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP)

# The embedded default dataset: synthetic elephants vs cars, generated offline and deterministically.
$(DATA)/.complete: | $(STAMP)
	$(BIN)/edgeclf make-demo-data $(DATA)

demo-data: $(DATA)/.complete

train: $(STAMP) $(if $(filter data/demo,$(DATA)),$(DATA)/.complete)
	$(BIN)/edgeclf train --data $(DATA) --preset $(PRESET) $(TRAIN_ARGS)

export: $(STAMP)
	$(BIN)/edgeclf export $(RUN) $(EXPORT_ARGS)

benchmark: $(STAMP)
	$(BIN)/edgeclf benchmark $(RUN)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf runs .pytest_cache .ruff_cache
