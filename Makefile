# plnbot — the two commands a new user needs: `make demo` and `make test`.
# The virtual environment is rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-peers lint bench bench-quick clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "plnbot needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/plnbot demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# plnbot against real reference servers (tests/peers; the atproto ones need npm, PostgreSQL
# and redis-server). Its own pytest options: the peers start once, in this one process.
# The install comes first, outside pytest's per-test timeout (exit 3: npm cannot reach its
# registry; the tests then skip and say so).
test-peers: $(STAMP)
	bash tests/peers/atproto/install.sh >/dev/null || [ $$? -eq 3 ]
	$(BIN)/python -m pytest tests/peers -m peers -o addopts="" -o timeout=900 -q -rs \
		--durations=0

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run_all --quick

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
