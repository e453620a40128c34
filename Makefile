# Three commands for a newcomer: `make demo`, `make lab` and `make test`. Each sets up .venv itself.
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)
PYTHON  ?= python3
LABEXT  := server_ext/labextension/package.json

.PHONY: setup bwrap docker chromium test-ray jupyter-ext labext demo lab test lint typecheck bench fidelity clean

setup: $(STAMP) bwrap docker jupyter-ext

# The jupyter-server extension enabled and the JupyterLab extension installed in the venv as
# `pip install` does it (an editable install leaves out a wheel's data files).
jupyter-ext: $(STAMP) $(LABEXT)
	install -D -m 644 server_ext/jupyter-config/nbremote.json \
		$(VENV)/etc/jupyter/jupyter_server_config.d/nbremote.json
	rm -rf $(VENV)/share/jupyter/labextensions/nbremote
	mkdir -p $(VENV)/share/jupyter/labextensions
	cp -r server_ext/labextension $(VENV)/share/jupyter/labextensions/nbremote

# The prebuilt JupyterLab extension (TypeScript in labextension/), rebuilt when its sources change.
labext: $(LABEXT)
$(LABEXT): $(STAMP) $(wildcard labextension/src/*.ts labextension/style/* labextension/schema/*) \
		labextension/package.json labextension/yarn.lock labextension/tsconfig.json labextension/build.sh
	VENV=$(VENV) sh labextension/build.sh
	touch $@

# Volumes are mounted in workers with bubblewrap; installed where apt can (CI runs as root).
bwrap:
	@command -v bwrap >/dev/null || ! command -v apt-get >/dev/null || \
		apt-get install -y -qq bubblewrap >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) || \
		echo "bubblewrap is missing: install it to mount volumes in workers"

# The docker backend's tests start a dockerd (scripts/dockerd.sh) and build their base image with
# mmdebstrap: Debian's packages, installed where apt can (as root); elsewhere those tests skip.
docker:
	@command -v dockerd >/dev/null && command -v mmdebstrap >/dev/null || \
		! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io mmdebstrap >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq docker.io mmdebstrap >/dev/null) || \
		echo "docker.io or mmdebstrap is missing: the docker backend's tests will skip"

# Exactly the versions of uv.lock (an upgrade is a deliberate `uv lock --upgrade` and a commit).
$(STAMP): pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	UV_PYTHON_DOWNLOADS=never $(BIN)/uv sync --quiet --locked --extra dev --python $(BIN)/python
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(BIN)/nbremote demo notebooks/quickstart.ipynb

# JupyterLab of the venv on the quickstart, with a "Python (nbremote)" kernel (scripts/lab.sh).
lab: setup
	sh scripts/lab.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy nbremote runner server_ext

# The browser tests (tests/browser) drive Debian's Chromium, never a browser Playwright downloads;
# installed where apt can (CI runs as root).
chromium:
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
		apt-get install -y -qq chromium >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium is missing: install it to run the browser tests (tests/browser)"

test: lint typecheck chromium
	cd labextension && ../$(BIN)/jlpm test
	$(BIN)/python -m pytest

# The Ray backend's stage alone (`make test` runs it too): one three-node Ray cluster on this
# machine (scripts/ray_cluster.py), shared by the tests of tests/ray.
test-ray: setup
	$(BIN)/python -m pytest tests/ray

bench: setup
	$(BIN)/python bench/bench_cells.py
	$(BIN)/python bench/bench_functions.py
	$(BIN)/python bench/bench_arrays.py --write
	$(BIN)/python bench/bench_classes.py
	$(BIN)/python bench/bench_coldstart.py
	$(BIN)/python bench/bench_images.py
	$(BIN)/python bench/bench_stores.py
	$(BIN)/python bench/bench_schedule.py
	$(BIN)/python bench/bench_endpoints.py
	$(BIN)/python bench/plot_ratios.py

# Public notebooks, local against %%remote, cell by cell (tests/fidelity/SOURCES.md).
fidelity: setup
	$(BIN)/python -m tests.fidelity.report

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache server_ext/labextension labextension/lib
