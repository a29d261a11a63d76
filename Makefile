# The two commands of the README: `make demo` and `make test`. Both set everything up.
.PHONY: setup demo imports test test-fast lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/avsr demo --out demo_out

# Import contracts (pyproject.toml [tool.importlinter]): layers, no cycles.
imports: setup
	.venv/bin/lint-imports --no-cache

test: imports
	.venv/bin/python -m pytest -q

test-fast: imports
	.venv/bin/python -m pytest -q -m "not slow"

lint: imports
	.venv/bin/ruff check avsr preprocessing clustering tasks tests benchmarks
