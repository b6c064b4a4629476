# s2proxy developer entry points. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8001
ARGS ?=
SHARED_SCHEMAS ?= ../shared/s2-ws-json
BIN := $(VENV)/bin

.PHONY: all run test bench submodule install clean check-schemas interop-venv

all: install

# The schemas come from the s2-ws-json submodule. Without network (CI), the working copy is
# filled from ../shared/s2-ws-json, which holds the same upstream commit.
submodule: s2-ws-json/s2-json-schema/messages/Handshake.schema.json

s2-ws-json/s2-json-schema/messages/Handshake.schema.json:
	@git submodule update --init s2-ws-json 2>/dev/null || true
	@if [ ! -f $@ ]; then \
	  if [ -d "$(SHARED_SCHEMAS)/s2-json-schema" ]; then \
	    echo "filling s2-ws-json from $(SHARED_SCHEMAS)"; \
	    mkdir -p s2-ws-json && cp -r "$(SHARED_SCHEMAS)"/. s2-ws-json/; \
	  else \
	    echo "cannot fetch the s2-ws-json submodule and $(SHARED_SCHEMAS) is missing" >&2; exit 1; \
	  fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python setup.py setup.cfg submodule
	$(BIN)/pip install -q '.[test,bench]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/twistd --nodaemon --pidfile= s2analyzer --port $(PORT) $(ARGS)

# The interop tests (tests/test_interop_s2python.py) run the reference implementation s2-python in a
# venv of its own: its `ws` extra pins websockets~=13.1, which the test venv cannot share. Without
# PyPI the target only says so, and those tests skip with the reason (written to $(INTEROP_LOG)).
INTEROP_VENV ?= .venv-interop
S2PYTHON_VERSION ?= 0.11.1
INTEROP_STAMP := $(INTEROP_VENV)/.installed-s2-python-$(S2PYTHON_VERSION)
INTEROP_LOG := $(INTEROP_VENV).log

interop-venv: $(INTEROP_STAMP)

$(INTEROP_STAMP):
	@rm -f $(INTEROP_LOG)
	@if [ ! -x $(INTEROP_VENV)/bin/python ]; then $(PYTHON) -m venv $(INTEROP_VENV) >>$(INTEROP_LOG) 2>&1; fi
	@if $(INTEROP_VENV)/bin/pip install -q 's2-python[ws]==$(S2PYTHON_VERSION)' >>$(INTEROP_LOG) 2>&1; then \
	  touch $@; rm -f $(INTEROP_LOG); echo "s2-python $(S2PYTHON_VERSION) installed in $(INTEROP_VENV)"; \
	else \
	  echo "warning: could not install s2-python[ws]==$(S2PYTHON_VERSION) into $(INTEROP_VENV) (see $(INTEROP_LOG)); the interop tests will skip" >&2; \
	fi

# trial runs the checkout's code (the current directory comes first on sys.path).
test: install interop-venv
	PYTHONPATH=$(CURDIR) $(BIN)/trial $(TRIAL_ARGS) tests

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build dist *.egg-info _trial_temp* $(VENV) $(INTEROP_VENV) $(INTEROP_LOG)
