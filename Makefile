# The two fresh-machine commands (see README.md):
#   make quickstart   the main job
#   make test         everything the tests need, then the tests
PYTHON ?= python3

.PHONY: install quickstart test

install:
	$(PYTHON) -m pip install -q -e '.[test]'

quickstart: install
	dreamerbench train --suite dmc_proprio --task cartpole_balance --size 1m --steps 20000 --logdir runs/quickstart

test: install
	$(PYTHON) -m pytest -q
