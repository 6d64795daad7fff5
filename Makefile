# The course kit's entry points. Each target creates or reuses the virtual environment itself.
#   make course [PROFILE=smoke|cpu|gpu]   run every notebook headless into runs/<profile>/ and write the report
#   make test                             the test suite (library, notebooks in the smoke profile, exercises, browser)
#   make lab                              open JupyterLab on the course
#   make bench                            benchmarks (ratios side by side)
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.advlib-installed

# An offline mirror of the data sets beside the checkout (../shared/data) is used when present;
# otherwise torchvision downloads into data/, or the shipped samples stand in (with a notice).
ifneq ($(wildcard ../shared/data),)
export ADVLIB_DATA ?= $(abspath ../shared/data)
endif

.PHONY: setup course test lab bench report clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,course]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (advlib)" >/dev/null
	touch $(STAMP)

course: $(STAMP)
	$(BIN)/python -m advlib.course run --profile $(PROFILE)

report: $(STAMP)
	$(BIN)/python -m advlib.course report --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests
	ADVLIB_PROFILE=smoke ADVLIB_PROGRESS=text $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax notebooks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pgd.py

clean:
	rm -rf runs .pytest_cache
