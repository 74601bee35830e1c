# thermact: the two set-up commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit unit-avx2 venv clean bench models

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

# Retrain the shipped models (src/thermact/shipped.py) from the bundled data: every keyframe of the
# 19 thermal_v2 recordings, no validation; their inference checkpoints replace src/thermact/weights/.
# The single live model is distilled from the three-seed ensemble, so the ensemble comes first.
MODELS_DIR ?= runs/models
ACTION_RECIPE = config=thermal_net_live data.root=thermal_v2 data.split=all model.head.box_cues=true model.head.box_radial=true \
	"augment.time_stretch=[0.8,1.25]" augment.frame_drop=0.5 augment.p_stale_rows=0.05 augment.dead_pixels=0.01

models: $(STAMP)
	$(BIN)/thermact train $(ACTION_RECIPE) run_dir=$(MODELS_DIR)/thermal_net_live exist_ok=true
	$(BIN)/thermact train $(ACTION_RECIPE) seed=1 run_dir=$(MODELS_DIR)/thermal_net_live_s1 exist_ok=true
	$(BIN)/thermact train $(ACTION_RECIPE) seed=2 run_dir=$(MODELS_DIR)/thermal_net_live_s2 exist_ok=true
	$(BIN)/thermact train config=person_detector_live data.root=thermal_v2 data.split=all \
		"augment.time_stretch=[0.8,1.25]" augment.frame_drop=0.5 augment.p_stale_rows=0.05 augment.dead_pixels=0.01 \
		"augment.offset_c=[-3.0,3.0]" "augment.gain=[0.8,1.2]" augment.shift_px=6 \
		run_dir=$(MODELS_DIR)/person_detector_live exist_ok=true
	$(BIN)/thermact model ensemble exist_ok=true out=src/thermact/weights/thermal_net_live_ens3.pt \
		"members=[$(MODELS_DIR)/thermal_net_live/last.pt,$(MODELS_DIR)/thermal_net_live_s1/last.pt,$(MODELS_DIR)/thermal_net_live_s2/last.pt]"
	$(BIN)/thermact train $(ACTION_RECIPE) loss.distill_from=thermal_net_live_ens3 \
		loss.distill_weight=0.9 loss.distill_temperature=4.0 "augment.zoom=[0.8,1.25]" \
		run_dir=$(MODELS_DIR)/thermal_net_live_kd exist_ok=true
	$(BIN)/thermact export $(MODELS_DIR)/thermal_net_live_kd/last.pt format=weights exist_ok=true \
		out=src/thermact/weights/thermal_net_live.pt
	$(BIN)/thermact export $(MODELS_DIR)/person_detector_live/last.pt format=weights exist_ok=true \
		out=src/thermact/weights/person_detector_live.pt

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

# The tests whose numbers come from trained or exported models, again with the CPU kernels of a
# machine without AVX-512 / AMX (oneDNN and ATen dispatch capped at AVX2): a result that holds
# only on the CI machine's own kernels fails here.
ISA_TESTS = tests/inference tests/export tests/commands/test_detect.py tests/commands/test_stream.py \
	tests/commands/test_export.py tests/models/test_slowfast.py tests/models/test_pretrained_parity.py \
	tests/tasks/test_person.py tests/models/test_tta.py tests/models/test_ensemble.py tests/test_shipped.py \
	tests/ops/test_cpu_layout.py tests/models/test_person_decode.py
unit-avx2: $(STAMP)
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest -q -p no:cacheprovider $(ISA_TESTS)

test: lint typecheck unit unit-avx2

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_roi_align.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
