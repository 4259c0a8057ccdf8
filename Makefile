# Every target works on a fresh machine: `venv` installs what the project needs from its own files.
STACK ?= dev
PY := venv/bin/python
STAMP := venv/.installed

.PHONY: venv rehearse test test-fast lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	python3 -m venv venv
	venv/bin/pip install --quiet --upgrade pip
	venv/bin/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

rehearse: $(STAMP)
	$(PY) -m rehearsal --stack $(STACK) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest

# The quick loop while editing (under 15 s on two cores): leaves out the tests marked slow or host in
# tests/conftest.py. `make test` stays the whole suite, and is what CI runs.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not host"

lint: $(STAMP)
	venv/bin/ruff check .
	venv/bin/mypy components protectedvm emulator policies rehearsal bench testing tests

bench: $(STAMP)
	$(PY) -m bench.verify_scale --smoke
	$(PY) -m bench.program_eval --smoke
	$(PY) -m bench.drill_scale --smoke

clean:
	rm -rf venv .pytest_cache .mypy_cache .ruff_cache
