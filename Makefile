# s2proxy developer entry points. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8001
ARGS ?=
SHARED_SCHEMAS ?= ../shared/s2-ws-json
BIN := $(VENV)/bin

.PHONY: all run test bench submodule install clean check-schemas

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

# trial runs the checkout's code (the current directory comes first on sys.path).
test: install
	PYTHONPATH=$(CURDIR) $(BIN)/trial $(TRIAL_ARGS) tests

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build dist *.egg-info _trial_temp* $(VENV)
