# Two entry points (see README): `make run` (claims + figures that need no GPU) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: setup run test test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,notebooks,hf]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/opo-theory claims
	$(VENV)/bin/opo-theory figures

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu"

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench_bandit_grid.py
	$(PY) benchmarks/bench_diagnostics.py
	$(PY) benchmarks/bench_lm.py
	$(PY) benchmarks/bench_vs_trl.py    # prints how to install trl when it is missing

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
