# The two commands a newcomer needs: `make repro` and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# DVC stage commands call `python`: make it the project's interpreter.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test install bench publish clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

# The tests start their own MariaDB, PostgreSQL, sshd and Chromium; the script installs them from
# Debian's packages where it can and otherwise says why (those tests then skip with the reason).
test: $(STAMP)
	scripts/install_test_services.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Speed and memory benchmarks of bench/speed/ (minutes each; results under bench/results/, see
# bench/README.md). The studies of bench/studies/ take hours and are run one by one by hand.
BENCHES ?= generation training package sql_dump
bench: $(STAMP)
	for b in $(BENCHES); do $(BIN)/python bench/speed/$$b.py || exit 1; done

publish: $(STAMP)
	$(BIN)/histosynth publish $(if $(VERSION),--version $(VERSION))

clean-venv:
	rm -rf $(VENV)
