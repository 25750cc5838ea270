# Targets people and CI share. `make up` starts Dockyard; `make test` runs every check and test.
.PHONY: up test check unit bench format clean

up:
	scripts/bootstrap
	.venv/bin/dockyard up

test:
	scripts/bootstrap --dev
	scripts/check
	DOCKYARD_TEST_DATABASE_URL=$$(scripts/test-postgres start) .venv/bin/pytest -q

check:
	scripts/check

unit:
	.venv/bin/pytest -q -m "not e2e"

bench:
	for b in bench/*.py; do .venv/bin/python "$$b"; done

format:
	.venv/bin/ruff format src tests bench
	.venv/bin/ruff check --fix src tests bench

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
