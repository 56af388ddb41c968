# pyrt — `make demo` runs the server with the demo page; `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Where `make demo` listens: `make demo PORT=8123`, `make demo HOST=0.0.0.0` (add --allowed-host then).
HOST   ?= 127.0.0.1
PORT   ?= 8000
WHEELS := .cache/pyodide/pyodide-lock.json

.PHONY: demo test setup system-deps lint typecheck unit server-tests browser-tests clean wheels notebook

demo: setup
	$(BIN)/python serve.py --demo --host $(HOST) --port $(PORT)

test: setup system-deps lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP) node_modules/.package-lock.json $(WHEELS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# Pure-Python wheels Pyodide needs offline (micropip, the notebook kernel's) and a lock with their
# real hashes: Pyodide's npm package ships none, and PyPI's files differ from Pyodide's lock.
$(WHEELS): scripts/vendor_wheels.py node_modules/.package-lock.json $(STAMP)
	$(BIN)/python scripts/vendor_wheels.py
	touch $@

wheels: $(WHEELS)

# The offline JupyterLite site (examples/*.ipynb, pyrt preloaded); serve.py shows it at /lab/.
notebook: setup
	$(BIN)/python scripts/build_notebook.py

# The three browser engines (Chromium; Firefox ESR; WebKitGTK's MiniBrowser with its WebDriver, on
# an Xvfb display) and redis-server (Redis broker tests), from apt on Debian/Ubuntu.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || [ -n "$${PYRT_CHROMIUM+set}" ] || missing="$$missing chromium"; \
	command -v firefox-esr >/dev/null 2>&1 || command -v firefox >/dev/null 2>&1 || [ -n "$${PYRT_FIREFOX+set}" ] \
	  || missing="$$missing firefox-esr"; \
	command -v WebKitWebDriver >/dev/null 2>&1 || missing="$$missing webkit2gtk-driver"; \
	command -v Xvfb >/dev/null 2>&1 || missing="$$missing xvfb"; \
	command -v xauth >/dev/null 2>&1 || missing="$$missing xauth"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing:$$missing — install them with your package manager (see README)"; exit 1; \
	  fi; \
	fi

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy --strict pyrt

unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

server-tests: setup system-deps
	$(BIN)/python -m pytest tests/server $(PYTEST_ARGS)

browser-tests: setup system-deps
	$(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache test-results .cache

# Benchmarks (docs/benchmarks.md): client contenders in Chromium, then server fan-out and idle
# connections; prints figures and ratios, writes bench/results/latest.{json,md,png}. ~8 minutes.
.PHONY: bench
BENCH_STAMP := $(VENV)/.bench-stamp

bench: setup system-deps $(BENCH_STAMP) bench/node_modules/.package-lock.json
	$(BIN)/python -m bench.run

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

bench/node_modules/.package-lock.json: bench/package.json bench/package-lock.json
	npm ci --prefix bench --no-audit --no-fund
