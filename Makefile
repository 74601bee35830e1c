# thermact: the two set-up commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit venv clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is pinned to the local CPU wheel (torch==2.13.0); install it first so that nothing
# else can make pip resolve a newer (CUDA) build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# The main job on the bundled data: inspect it, train the thermal-native default on the honest
# session split (train SL18, test SL14), evaluate the final model, write the report with plots.
DEMO_DIR ?= runs/demo
demo: $(STAMP)
	$(BIN)/thermact data inspect
	$(BIN)/thermact train config=configs/thermal_net_s.yaml run_dir=$(DEMO_DIR) exist_ok=true
	$(BIN)/thermact eval checkpoint=$(DEMO_DIR)/last.pt out=$(DEMO_DIR)/eval exist_ok=true
	@echo "demo done: training run in $(DEMO_DIR), evaluation report in $(DEMO_DIR)/eval/report.md"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_roi_align.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
