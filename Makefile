# CIARD Studio. Two commands do everything on a fresh machine:
#   make app    set up (first time only), then serve the app on http://localhost:8501
#   make test   set up (first time only), then run the test suite
# and, headless: make demo (a demo distillation from the command line).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup app demo test test-fast clean-runs

setup: $(STAMP)

# torch/torchvision are pinned in requirements.txt; pip (not uv/poetry) installs them.
$(STAMP): requirements.txt requirements-dev.txt requirements-scale.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/streamlit run app.py

demo: $(STAMP)
	$(PY) -m ciard train --preset demo

test: $(STAMP)
	$(PY) -m pytest -q

# the suite without the tests marked slow (the full-archive data test)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

clean-runs:
	rm -rf runs
