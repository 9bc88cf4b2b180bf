# Two commands set up a fresh Debian machine (Python 3.11, no GPU):
#   make run    installs everything, then runs the main job on the built-in default (no model-hub downloads)
#   make test   installs everything, then runs lint + the default (fast) test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Headless rendering: Mesa's EGL (software, llvmpipe) works without a GPU.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
GL_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libopengl0
PYTEST_ARGS ?=
# Test processes (pytest-xdist). Two match the 2-core CI machine: the tests run torch single-threaded, so a
# second process uses the second core. --dist loadfile keeps each test file in one process, so the one file
# that starts a Ray cluster never meets another. TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2

.PHONY: setup system-deps run test test-slow lint bench clean

## Debian packages for headless GL, installed only when missing.
system-deps:
	@missing=""; for p in $(GL_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing headless GL packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi; \
	fi

## Virtual environment with the project (editable) and its dev tools; redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The exact CPU build of torch first: pyproject.toml only asks for a range, which pip would otherwise
	# satisfy with a multi-GB CUDA build on a machine without one.
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

setup: system-deps $(VENV)/.installed

## The main job on the built-in default: pi0 v2 (the tiny VLA) fine-tuned by PPO and BC on pick_place_milk, CPU only.
run: setup
	$(BIN)/vla-razor quickstart

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/policy_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs outputs multirun
