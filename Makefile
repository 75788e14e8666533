# The two commands of the README. Each sets up .venv on first use (or when a pinned file changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: dev test lint bench-certs clean

$(STAMP): requirements/dev.txt pyproject.toml kubesim/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
		-e . -e ./kubesim
	touch $(STAMP)

## Run the system: embedded Kubernetes (kubesim), operator, API and the example pool; Ctrl-C stops it.
dev: $(STAMP)
	$(BIN)/buildkit-controller dev --workdir .dev

## Lint, type-check, import contracts, then every test. pytest's "no tests collected" (5) fails too.
test: lint
	$(BIN)/pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# mypy cannot follow the editable install's import hook: give it the namespace as folder symlinks.
TYPING := build/typing/buildkit_controller
$(TYPING):
	mkdir -p $(TYPING)
	for d in core plugins controller gateway bkctl; do ln -sfn ../../../$$d $(TYPING)/$$d; done

lint: $(STAMP) $(TYPING)
	$(BIN)/ruff check .
	$(BIN)/mypy -p buildkit_controller.core -p buildkit_controller.plugins -p buildkit_controller.bkctl
	$(BIN)/mypy --config-file kubesim/pyproject.toml kubesim/src/kubesim
	$(BIN)/lint-imports

## Certificate issuance benchmark (one core); see docs/pki.md.
bench-certs: $(STAMP)
	$(BIN)/python benchmarks/bench_certs.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
