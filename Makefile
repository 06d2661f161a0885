# Two commands on a fresh machine (see README):  make run   and   make test
# Both create .venv and install the project first if that has not happened yet.

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
# Kept off for everyone; .telemetry says the same to kedro-telemetry.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
# glibc's allocator returns LSTM buffers to the OS after every step; keeping them
# made LSTM training up to 2x faster on the 2-core CPU we measured. Set before Python starts.
export GLIBC_TUNABLES := glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736

.PHONY: install run test lint viz mlflow-ui benchmarks clean-runs

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: anything else lets pip pull a CUDA build of several GB.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

run: install  ## install, then the main job on the data the repo ships
	$(BIN)/kedro run --pipeline=ecg_autoencoder

test: install  ## the whole test suite
	$(BIN)/python -m pytest --durations=25

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

viz: install  ## browse the pipelines at http://127.0.0.1:4141
	$(BIN)/kedro viz run --no-browser --host 127.0.0.1 --port 4141

mlflow-ui: install  ## the runs at http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server \
		--backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlruns \
		--host 127.0.0.1 --port 5000 --workers 1

benchmarks: install
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done
