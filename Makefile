# The two commands of the README: `make demo` and `make test`. Both set everything up.
.PHONY: setup demo test test-fast lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/avsr demo --out demo_out

test: setup
	.venv/bin/python -m pytest -q

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

lint: setup
	.venv/bin/ruff check avsr preprocessing clustering tasks tests benchmarks
