# fastnst: `make train` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export FIFTYONE_DO_NOT_TRACK := true

.PHONY: install train test test-all lint clean

install: $(STAMP)

# Every extra the tests use. setuptools is the build backend: tests/test_packaging.py builds
# the wheel offline with it. The app's browser test also needs Debian's chromium and its
# driver (apt-get install chromium chromium-driver); without them it skips.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 'setuptools>=77'
	$(PY) -m pip install --quiet -e '.[torch,train,video,data,export,app,retention,dev]'
	touch $(STAMP)

# The main job on the embedded default (scikit-image photos, Spider-Verse looks): about
# 10 minutes on a 2-core CPU; leaves an exported model and samples under outputs/.
train: install
	$(VENV)/bin/fastnst train experiment=quickstart

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ""

lint: install
	$(PY) -m ruff check fastnst tests tools train.py infer.py
	$(PY) -m ruff format --check fastnst tests tools train.py infer.py

clean:
	rm -rf outputs .pytest_cache .ruff_cache
