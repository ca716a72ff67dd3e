# The two commands a newcomer needs: `make demo` (set up, prepare the data, train and evaluate model_2)
# and `make test`. Everything runs from the .venv this Makefile creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench notebook clean-cache

setup: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

demo: setup
	$(BIN)/python prepare.py
	$(BIN)/python train.py --model model_2 --train-path train-medium --out runs/demo

test: setup
	$(BIN)/python -m pytest

notebook: setup
	$(BIN)/jupyter lab optim_visualizer.ipynb

bench: setup
	$(BIN)/python bench/pipeline.py

clean-cache:
	rm -rf .cache
