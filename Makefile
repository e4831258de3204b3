# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
HOST   ?= 127.0.0.1
PORT   ?= 8080
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test fuzz bench docker-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/calcinosis-cds serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest

# The long fuzz run (issue 16): 100,000 random examples in all over the 4 tests of tests/test_hardening_fuzz.py
# (`make test` runs 40 each, derandomized); hypothesis prints each test's count. FUZZ_EXAMPLES changes the total.
FUZZ_EXAMPLES ?= 100000
fuzz: $(STAMP)
	CDS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:cacheprovider -q --hypothesis-show-statistics \
		tests/test_hardening_fuzz.py

bench: $(STAMP)
	$(BIN)/python -m bench

docker-test:
	bash docker/test-image.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
