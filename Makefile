# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= convviz-report

.PHONY: demo test lint bench train clean lab course notebooks docs docs-serve dist
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg
# Notebooks are kept as jupytext scripts paired with .ipynb files (see notebooks/README.md).
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.py))
COURSE    := $(sort $(wildcard course/source/*/*.py))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-notebooks: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[notebooks]"
	@touch $(VENV)/.installed $@

$(VENV)/.installed-course: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[notebooks,course]"
	@touch $(VENV)/.installed $(VENV)/.installed-notebooks $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,browser,notebooks,release,docs,dask,jax,torch,hub]"
	@touch $(VENV)/.installed $@

demo: $(VENV)/.installed ## render the three views of the demo model into convviz-report/
	$(BIN)/convviz report --model demo --out $(OUT)

# The whole suite on TensorFlow, the core's tests (marked `backends`) on JAX and on PyTorch, the notebooks.
test: $(VENV)/.installed-test ## run the whole test suite (the course under nbgrader too), the core's tests on JAX and PyTorch, then the notebooks under nbval
	$(BIN)/python -m pytest
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m backends
	KERAS_BACKEND=torch $(BIN)/python -m pytest -m backends
	$(BIN)/python -m pytest $(NBVAL) notebooks/

lint: $(VENV)/.installed-test ## ruff, and the rooms' import contracts (.importlinter)
	$(BIN)/ruff check convviz_widgets tests bench notebooks course docs/hooks
	$(BIN)/lint-imports

# `make lab` reads Jupyter's configuration from lab-config/, which turns nbgrader's menus and server
# extensions off (they are switched on wherever nbgrader is installed, e.g. by `make test`); your
# JupyterLab settings and workspaces stay where they are. `make course` opens the course with them on.
LAB_SETTINGS := JUPYTERLAB_SETTINGS_DIR="$${JUPYTERLAB_SETTINGS_DIR:-$$HOME/.jupyter/lab/user-settings}" \
	JUPYTERLAB_WORKSPACES_DIR="$${JUPYTERLAB_WORKSPACES_DIR:-$$HOME/.jupyter/lab/workspaces}"

lab: $(VENV)/.installed-notebooks ## open the tour in JupyterLab (no nbgrader menus)
	JUPYTER_CONFIG_DIR=$(CURDIR)/lab-config $(LAB_SETTINGS) $(BIN)/jupyter lab notebooks/00_tour.ipynb

course: $(VENV)/.installed-course ## open the course in JupyterLab with nbgrader (Formgrader, Validate, Assignments)
	cd course && $(abspath $(BIN))/jupyter lab

notebooks: $(VENV)/.installed-test ## sync notebooks and scripts, re-execute the notebooks (after the model or API changes)
	$(BIN)/jupytext --sync $(NOTEBOOKS) $(COURSE)
	TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=$(CURDIR) $(BIN)/python -m convviz_widgets.notebook $(NOTEBOOKS:.py=.ipynb)

docs: $(VENV)/.installed-test ## build the documentation site into site/ (offline; any warning stops the build)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

docs-serve: $(VENV)/.installed-test ## serve the documentation site at http://127.0.0.1:8000, rebuilt as you edit
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve --strict --dev-addr 127.0.0.1:8000

dist: $(VENV)/.installed-test ## build the sdist and the wheel into dist/ and check their metadata
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

bench: $(VENV)/.installed-test ## speed benchmarks (ratios measured side by side)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

train: $(VENV)/.installed ## regenerate both demo models, honest and shortcut (about 20 minutes on 2 cores)
	$(BIN)/python -m convviz_widgets.demo.train --model both

clean:
	rm -rf $(OUT) .pytest_cache build dist site *.egg-info
