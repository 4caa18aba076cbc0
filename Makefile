# The two fresh-machine commands (see README.md):
#   make quickstart   the main job
#   make test         everything the tests need, then the style checks (make lint), then the tests
# and one for the habits alone:
#   make lint         ruff check . and ruff format --check . (configuration in pyproject.toml)
PYTHON ?= python3
# Private state directory of the local Slurm cluster the tests use.
SLURM_DIR ?= /tmp/dreamerbench-slurm
# Test worker processes (pytest-xdist); each test file stays in one worker, so its
# module fixtures (compiled agents, MLflow stores, sweeps) are built once.
TEST_WORKERS ?= 2

.PHONY: install quickstart lint test

install:
	$(PYTHON) -m pip install -q -e '.[test]'
	$(PYTHON) -m pip install -q --no-deps procgen-mirror==0.10.7 gym3==0.3.3  # see pyproject.toml

# 2 DMC proprio tasks x 2 seeds, tiny model, on this machine; results in ./mlflow.db,
# then the table of final scores and the learning curves (figs/quickstart.png and .pdf).
quickstart: install
	dreamerbench sweep experiments/quickstart.yaml
	dreamerbench table --suite dmc_proprio --runs quickstart
	dreamerbench plot --suite dmc_proprio --runs quickstart --kind curves --out figs/quickstart
	@echo "The table's first line says what its numbers are (final-score rule, what the normalisation"
	@echo "divides by). 1,500 steps of a debug-size model is a smoke test: expect scores far below published ones."

# Lint and formatting, as CI checks them; `ruff format .` fixes the formatting.
lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

# Checks the style first (make lint: a finding stops it before the long tests), then starts the
# real single-node Slurm cluster (installing its Debian packages if missing) for the sweep tests,
# and stops it afterwards whatever the outcome.
test: install
	$(MAKE) --no-print-directory lint
	DREAMERBENCH_SLURM_DIR=$(SLURM_DIR) bash slurm/local/start.sh
	DREAMERBENCH_SLURM_DIR=$(SLURM_DIR) SLURM_CONF=$(SLURM_DIR)/slurm.conf $(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile; \
	  rc=$$?; DREAMERBENCH_SLURM_DIR=$(SLURM_DIR) bash slurm/local/stop.sh; exit $$rc
