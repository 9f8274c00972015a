# plnbot — the two commands a new user needs: `make demo` and `make test`.
# The virtual environment is rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-crash test-peers lint bench bench-quick clean

# uv (installed by pip) installs what pip would, about three times faster: on a fresh
# clone the set-up is part of `make test`'s time. Compiled up front as pip does: where
# PYTHONDONTWRITEBYTECODE is set, each test process would otherwise compile every import.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "plnbot needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/plnbot demo

# Tests run on every core (pytest-xdist; PYTEST_WORKERS=0 runs them in one process):
# two workers a core for `make test`, whose tests often wait (PostgreSQL, local servers,
# the commands they run), which took 110 s instead of 134 s on 2 cores; one a core for
# the kill -9 crash trials (marker `crash`), which have their own target that .ci/run runs too.
PYTEST_WORKERS ?= auto
TEST_WORKERS ?= $(if $(filter auto,$(PYTEST_WORKERS)),$(shell echo $$(( $$(nproc) * 2 ))),$(PYTEST_WORKERS))
# Each test's own SQLite files go to memory (/dev/shm) where there is one: every commit
# waits for the disk otherwise (about a fifth of the wall time here). One folder per
# checkout, as pytest empties it at the start of every run.
TEST_TMP := $(shell test -d /dev/shm -a -w /dev/shm && \
	echo /dev/shm/plnbot-tests-$$(echo '$(CURDIR)' | cksum | cut -d' ' -f1))
BASETEMP := $(if $(TEST_TMP),--basetemp=$(TEST_TMP))

# The project's own modules are compiled first: where PYTHONDONTWRITEBYTECODE is set, every
# process (each xdist worker, each command a test runs) would compile them again.
test: lint
	$(BIN)/python -m compileall -q bot handlers storage tests bench
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(BASETEMP) -m "not crash"

test-crash: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope -m crash

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
	$(BIN)/mypy bot handlers storage

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
