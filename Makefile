# chatai: `make run` serves the app on http://127.0.0.1:8000, `make test` runs the suite.
# Both need only Python 3.11+ and make; the virtualenv is created in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test install install-dev lint format migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# The embedded default: SQLite, local memory cache, in-process tasks, DEBUG on.
# The demo admin's password is generated once into .admin-password and printed on every run.
run: install
	@test -s .admin-password || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(12))" > .admin-password
	DEBUG=true $(BIN)/python manage.py migrate --no-input
	@DEBUG=true ADMIN_USERNAME=$${ADMIN_USERNAME:-admin} ADMIN_PASSWORD=$${ADMIN_PASSWORD:-$$(cat .admin-password)} \
		$(BIN)/python manage.py bootstrap_admin
	DEBUG=true $(BIN)/python manage.py seed_demo --history 30
	@echo ""
	@echo "  chatai is starting on http://$(HOST):$(PORT)/admin/"
	@echo "  log in as '$${ADMIN_USERNAME:-admin}' with password: $${ADMIN_PASSWORD:-$$(cat .admin-password)}"
	@echo "  chat with the demo flow: DEBUG=true $(BIN)/python manage.py simulate_chat --channel whatsapp:+15550000001"
	@echo ""
	DEBUG=true $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Runs on SQLite by default; set DATABASE_URL (and REDIS_URL) to run the same suite on PostgreSQL.
test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install
	$(BIN)/python manage.py migrate --no-input

bench: install-dev
	bash bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
