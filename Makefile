# The two fresh-machine commands (see README.md):
#   make quickstart   the main job
#   make test         everything the tests need, then the tests
PYTHON ?= python3
# Private state directory of the local Slurm cluster the tests use.
SLURM_DIR ?= /tmp/dreamerbench-slurm
# Test worker processes (pytest-xdist); each test file stays in one worker, so its
# module fixtures (compiled agents, MLflow stores, sweeps) are built once.
TEST_WORKERS ?= 2

.PHONY: install quickstart test

install:
	$(PYTHON) -m pip install -q -e '.[test]'

# 2 DMC proprio tasks x 2 seeds, tiny model, on this machine; results in ./mlflow.db.
quickstart: install
	dreamerbench sweep experiments/quickstart.yaml

# Starts the real single-node Slurm cluster (installing its Debian packages if
# missing) for the sweep tests, and stops it afterwards whatever the outcome.
test: install
	DREAMERBENCH_SLURM_DIR=$(SLURM_DIR) bash slurm/local/start.sh
	DREAMERBENCH_SLURM_DIR=$(SLURM_DIR) SLURM_CONF=$(SLURM_DIR)/slurm.conf $(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile; \
	  rc=$$?; DREAMERBENCH_SLURM_DIR=$(SLURM_DIR) bash slurm/local/stop.sh; exit $$rc
