# The two commands a newcomer needs: `make repro` and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml or constraints.txt changes; every
# library is installed at the version constraints.txt pins (the same bytes on every machine).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# DVC stage commands call `python`: make it the project's interpreter.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test install bench publish clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# `dvc repro` brings the pipeline up to date (REPRO_ARGS: e.g. --force); the last lines are the summary
# (QA per class, whether the synthetic images helped, the report, the package, what to run next), also when
# DVC had nothing to rerun. The report stage prints the same block under plain `dvc repro`; here it waits.
repro: $(STAMP)
	HISTOSYNTH_SUMMARY_LATER=1 $(BIN)/dvc repro $(REPRO_ARGS)
	@$(BIN)/histosynth summary

# The tests start their own MariaDB, PostgreSQL, sshd and Chromium; the script installs them from
# Debian's packages where it can and otherwise says why (those tests then skip with the reason).
# pytest-xdist runs one worker per core; --dist loadfile keeps each file's tests, and the module
# fixtures they share (a tiny pipeline run, a trained model), on one worker, and hands out the files
# of slow tests first (tests/conftest.py orders them). The slowest tests are listed at the end.
# PYTEST_WORKERS= (empty) runs everything in one process.
PYTEST_WORKERS ?= -n auto --dist loadfile --no-loadscope-reorder
test: $(STAMP)
	scripts/install_test_services.sh
	$(BIN)/python -m pytest $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS)

# Speed and memory benchmarks of bench/speed/ (minutes each; results under bench/results/, see
# bench/README.md). The studies of bench/studies/ take hours and are run one by one by hand.
BENCHES ?= generation training package sql_dump
bench: $(STAMP)
	for b in $(BENCHES); do $(BIN)/python bench/speed/$$b.py || exit 1; done

publish: $(STAMP)
	$(BIN)/histosynth publish $(if $(VERSION),--version $(VERSION))

clean-venv:
	rm -rf $(VENV)
