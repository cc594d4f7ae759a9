# Developer shortcuts; CI (.ci/run) runs the same checks, then the README's test command.
.PHONY: check lint test

check: lint test  ## everything CI checks

lint:  ## ruff (lint and format) and mypy (strict on chain/)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test:
	.venv/bin/python -m pytest
