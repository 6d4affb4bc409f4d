# The README's two commands. Both set up (or reuse) the environment first: tools/setup_env.sh.
# Use an existing environment with VENV=/path/to/env (only what it lacks gets installed).
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup test demo
setup:
	@bash tools/setup_env.sh $(VENV)

test: setup
	$(PYTHON) -m pytest tests -n auto --dist worksteal

demo: setup
	$(PYTHON) tools/demo.py
