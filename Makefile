# The two commands: `make test` (set up everything, run the whole test suite) and `make demo`.
.PHONY: setup test demo lint bench

setup:
	bash scripts/setup.sh

test: setup
	NO_TORCH_COMPILE=1 .venv/bin/python -m pytest -q

demo: setup
	NO_TORCH_COMPILE=1 .venv/bin/duplexalign demo

lint: setup
	.venv/bin/ruff check src tests bench
