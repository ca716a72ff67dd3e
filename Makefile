# The two commands a newcomer needs: `make demo` (set up, prepare the data, train and evaluate model_2, then
# classify a few test images with the shipped detector) and `make test` (lint, then the test suite). Everything
# runs from the .venv this Makefile creates. `make app` serves the web page; `make weights` retrains the shipped detectors (~2 hours).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SEED ?= 0

.PHONY: setup demo test bench bench-deps train-deps notebook app weights clean-cache

setup: $(STAMP)

# the requirements, then the project itself in editable mode (pyproject.toml), so that every script, bench and
# notebook imports data/, models/, utils/, shipping/ and web/ from anywhere
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: setup
	$(BIN)/python prepare.py
	$(BIN)/python train.py --model model_2 --train-path train-medium --out runs/demo
	@echo "== the shipped default detector on four test-3class images of each class, drawn at random (seed $(SEED))"
	$(BIN)/python predict.py --sample 4 --seed $(SEED) images/test-3class

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

app: setup
	$(BIN)/python app.py

# two_part_edits's localiser also trains on unedited photographs from elsewhere (data/other_photos.py): Debian's
# opencv-doc sample photographs, a source the real-photo bench never reads (apt-get, as root)
train-deps:
	dpkg -s opencv-doc >/dev/null 2>&1 || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc >/dev/null) \
		|| echo "could not install opencv-doc; training two_part_edits will say what it lacks" >&2

weights: setup train-deps
	$(BIN)/python prepare.py
	$(BIN)/python ship.py --train

notebook: setup
	$(BIN)/jupyter lab optim_visualizer.ipynb

# the seed's pipeline against ours (3 min); accuracy against time for each recipe (over an hour on 2 cores:
# recipe fast on three seeds, three runs of an 18-minute budget, the robustness tables); the edit detector
# (about 2.5 hours: three 20-minute runs, then the family table: 19 runs of 4 epochs on 20,000 images, one per
# family of edit left out and two references, about 3 minutes each); the bias table
# of the shipped detectors (about 4 minutes); GPU figures
# (skips without CUDA)
# what bench/real_photos.py reads, so that every machine of the kind scores the same 55 photographs: scikit-image's
# sample photos (pip) and three Debian wallpaper packages (apt-get, as root; elsewhere it says what it could not get)
bench-deps: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check scikit-image
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mate-backgrounds \
		lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers >/dev/null) \
		|| echo "could not install the wallpaper packages; bench/real_photos.py will say which photos it lacks" >&2

bench: setup bench-deps
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/time_to_accuracy.py
	$(BIN)/python bench/edits.py --leave-one-out-epochs 4
	$(BIN)/python bench/bias.py
	$(BIN)/python bench/real_photos.py
	$(BIN)/python bench/gpu.py

clean-cache:
	rm -rf .cache
