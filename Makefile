# CIARD Studio. Two commands do everything on a fresh machine:
#   make demo   set up (first time only), then run the demo distillation
#   make test   set up (first time only), then run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast eval clean-runs

setup: $(STAMP)

# torch/torchvision are pinned in requirements.txt; pip (not uv/poetry) installs them.
$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m ciard train --preset demo

test: $(STAMP)
	$(PY) -m pytest -q

# the suite without the tests marked slow (the full-archive data test)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

clean-runs:
	rm -rf runs
