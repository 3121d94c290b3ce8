# tracklens — `make help` lists the verbs. The two you need: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
SERVE ?= 1
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_ENABLE_ONEDNN_OPTS ?= 0

.DEFAULT_GOAL := help
.PHONY: help demo test test-fast docs venv system-deps lock bench clean musicnn-checkpoints musicnn-weights default-model efficientat-weights efficientat-fixture descriptors-model key-model

help: ## list the verbs
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "tracklens needs Python 3.11 (set PYTHON=/path/to/python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m tracklens.numba_cache  # compile numba's cache once, here: see numba_cache.py
	@touch $(STAMP)

venv: $(STAMP) ## create .venv/ and install the pinned dependencies (reused when up to date)

system-deps: ## install ffmpeg (M4A/AAC decoding) and Chromium (browser tests) with apt-get when missing
	@bash .ci/system-deps

demo: venv ## run the whole pipeline on a generated demo catalogue (no credentials, no network); SERVE=0 skips the dashboard
	$(BIN)/tracklens demo-data --out $(DEMO_DIR)
	$(BIN)/tracklens prepare $(DEMO_DIR)/charts.csv --out $(DEMO_DIR)/charts_clean.csv
	$(BIN)/tracklens split $(DEMO_DIR)/charts_clean.csv --out $(DEMO_DIR)/splits
	$(BIN)/tracklens acquire folder $(DEMO_DIR)/audio --out $(DEMO_DIR)/manifest.csv
	$(BIN)/tracklens features $(DEMO_DIR)/manifest.csv --out $(DEMO_DIR)/features.parquet --jobs -1
	$(BIN)/tracklens train --features $(DEMO_DIR)/features.parquet --models all --epochs 8 --out $(DEMO_DIR)/models
	$(BIN)/tracklens evaluate --models-dir $(DEMO_DIR)/models --out reports/demo-models
	$(BIN)/tracklens predict $(DEMO_DIR)/audio/*/*.00000.wav --model $(DEMO_DIR)/models/mlp --top 3
	$(BIN)/tracklens catalogue build $(DEMO_DIR)/audio --name demo --jobs -1
	$(BIN)/tracklens similar $(DEMO_DIR)/audio/rock/rock.00001.wav --catalogue demo --top 3
	$(BIN)/tracklens figures --charts $(DEMO_DIR)/charts_clean.csv --audio $(DEMO_DIR)/audio --out reports/figures
	@echo
	@echo "Demo outputs:"
	@echo "  data and features   $(DEMO_DIR)/ (charts_clean.csv, splits/, features.parquet, models/)"
	@echo "  model comparison    reports/demo-models/report.html"
	@echo "  figures             reports/figures/"
	@echo "  catalogue           data/catalogues/demo/ (the check page's picker; tracklens similar FILE --catalogue demo)"
	@if [ "$(SERVE)" = "1" ]; then \
	  echo "Starting the dashboard (Ctrl-C stops it; make demo SERVE=0 skips this step) ..."; \
	  TF_ENABLE_ONEDNN_OPTS=1 $(BIN)/tracklens dashboard; \
	else \
	  echo "Dashboard not started (SERVE=$(SERVE)); start it with: $(BIN)/tracklens dashboard"; \
	fi

GTZAN_DIR ?= ../shared/data/gtzan
DEFAULT_MODEL_ARCH ?= musicnn_linear
DEFAULT_POOL := data/processed/gtzan_default/features.parquet
default-model: venv ## retrain the shipped genre models by measurement (models/default/: best of the musicnn / EfficientAT heads and fusions on whole clips; models/default-table/: best on the 57 published features) on the real GTZAN train+valid folds, and print the fit rule's rates
	$(BIN)/python recipes/heads.py --out models --name default --seed 42
	$(BIN)/python recipes/table_model.py --out models --seed 42
	$(BIN)/tracklens predict $(GTZAN_DIR)/audio/metal/metal.00002.opus --top 3

key-model: venv ## refit the engine's key model (key_estimation.KEY_MODEL) on the GTZAN train+valid key annotations, its choices by train-fold CV; prints the constants to paste (docs/key.md)
	$(BIN)/python recipes/key_model.py --jobs 2

FMA_TABLE ?= ../shared/data/fma/echonest_librosa_650.csv
descriptors-model: venv ## rebuild models/descriptors/ (energy, acousticness ... estimated from audio) from the FMA + Echo Nest table; fixed seed
	$(BIN)/python recipes/descriptors.py --table $(FMA_TABLE) --out models/descriptors --seed 42

test: venv system-deps musicnn-checkpoints ## run the whole test suite (the musicnn checkpoints let the equivalence test run)
	$(BIN)/python -m pytest

test-fast: venv ## the unit tier while you work: all but the `slow` and `browser` tests (docs/development.md)
	$(BIN)/python -m pytest -m "not slow and not browser"

docs: venv ## build the docs site into site/ (mkdocs, warnings are errors; the API pages read the source)
	@# the API pages read the checkout under its import name: a link in a temp folder (never inside the repo)
	@src=$$(mktemp -d) && ln -s $(CURDIR) $$src/tracklens && \
	  TRACKLENS_DOCS_PATH=$$src NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q; rc=$$?; rm -rf $$src; exit $$rc
	@echo "docs site: site/index.html"

MUSICNN_CACHE := data/interim/musicnn-0.1.0
MUSICNN_WHEEL := musicnn-0.1.0-py3-none-any.whl
MUSICNN_WHEEL_SHA256 := f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa
MUSICNN_MODELS ?= MSD_musicnn
musicnn-checkpoints: venv ## fetch musicnn 0.1.0's original checkpoints (pinned 29 MB wheel, hash-checked) for the equivalence test
	@test -f $(MUSICNN_CACHE)/musicnn/MSD_musicnn/.index || { \
	  $(BIN)/python -m pip download -q --no-deps --only-binary :all: musicnn==0.1.0 -d $(MUSICNN_CACHE) && \
	  echo "$(MUSICNN_WHEEL_SHA256)  $(MUSICNN_CACHE)/$(MUSICNN_WHEEL)" | sha256sum -c --quiet && \
	  $(BIN)/python -m zipfile -e $(MUSICNN_CACHE)/$(MUSICNN_WHEEL) $(MUSICNN_CACHE); }

musicnn-weights: musicnn-checkpoints ## re-create models/pretrained/ from musicnn 0.1.0's checkpoints
	$(BIN)/python models/pretrained/convert_musicnn.py $(MUSICNN_CACHE)/musicnn --models $(MUSICNN_MODELS)

TORCH_VENV := data/interim/torch-venv
efficientat-weights: venv ## re-create models/pretrained/mn04_as.weights.h5 + efficientat.json from ../shared/weights/efficientat (no torch needed)
	$(BIN)/python models/pretrained/convert_efficientat.py

efficientat-fixture: venv ## record tests/fixtures/efficientat/ from the PyTorch original (side venv $(TORCH_VENV): torch 2.13.0 CPU)
	$(BIN)/python bench/efficientat_original.py --torch-venv $(TORCH_VENV)

bench: venv ## run the feature-engine benchmark (bench/features.py) on ../shared/data; the others: see docs/
	$(BIN)/python bench/features.py

lock: ## re-resolve requirements.lock from pyproject.toml (needs the network)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -e '.[dev]' && .lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv

clean: ## remove generated data, reports and caches (keeps .venv/)
	rm -rf $(DEMO_DIR) data/interim/* data/processed/* .pytest_cache
