# The two commands a new user needs: `make demo` runs Valt, `make test` runs the tests.
# Both set everything up first (virtualenv, packages, test peers).

.PHONY: demo test setup peers

setup:
	@scripts/setup

demo: setup
	.venv/bin/valt demo $(ARGS)

peers:
	@scripts/peers

# ruff first: a style problem fails in seconds, before the suite's minutes.
test: setup peers
	.venv/bin/ruff check .
	.venv/bin/python -m pytest --durations=40 $(ARGS)
