# The README's two commands. Each does its own set-up first (scripts/setup.sh, idempotent).
PYTHON ?= python3
export PYTHON

.PHONY: setup demo test notebooks
setup:
	bash scripts/setup.sh

## The course's main job: sample digits from the shipped latent diffusion weights into demo/ (seconds on a CPU).
demo: setup
	$(PYTHON) -m minildm demo --out demo

## The whole test suite, as CI runs it: package tests, then every notebook under nbval, in smoke mode.
# PYTHONPATH: the notebook kernels import this checkout's minildm, whatever else is installed.
# WORKERS processes (pytest-xdist, one per core by default, at most 4), each on one thread (OMP_NUM_THREADS: the notebook
# kernels too); --dist loadfile keeps each file, and so each notebook's cells, on one worker, in order.
WORKERS ?= auto
test: setup
	CI=true MINILDM_MODE=smoke OMP_NUM_THREADS=1 PYTHONPATH=$(CURDIR) $(PYTHON) -m pytest tests notebooks --nbval-lax \
		-q -p no:cacheprovider --durations=25 -n $(WORKERS) --maxprocesses 4 --dist loadfile

## Re-execute the notebooks in cpu mode and save their outputs (what is committed).
notebooks: setup
	PYTHONPATH=$(CURDIR) $(PYTHON) scripts/notebooks.py run --mode cpu
