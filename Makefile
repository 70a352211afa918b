# PIM Portal: `make run` and `make test` are all a fresh machine needs (see README).
# Every target is idempotent: the virtualenv is created once and the development lock file
# is installed again only when it changes (the stamp file records the last install).
# `make install VENV=/tmp/somewhere` builds (and uses) another virtualenv.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The direct dependencies are declared in pyproject.toml; `make lock` pins them, with their
# own dependencies and hashes, in two lock files: production installs only the first.
RUNTIME_LOCK := requirements/runtime.txt
DEV_LOCK := requirements/dev.txt
STAMP := $(VENV)/.dev-lock-installed
DATA_DIR := $(or $(PIM_DATA_DIR),var)
DEMO_OUT := $(DATA_DIR)/demo-sign-ins.txt
# Two cores on the reference machine; `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
# `make lock LOCK_ARGS="--upgrade-package django"` moves one pin; --upgrade moves them all.
LOCK_ARGS ?=
# Only the public index: the machine's own pip configuration (extra indexes, local wheel
# folders, constraints) never reaches a lock file.
PIP_COMPILE := env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
	PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet \
	--generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

.DEFAULT_GOAL := help
.PHONY: help install lock run codes test lint format typecheck lint-imports check bench clean

help:
	@echo "make run           set up (virtualenv, install, migrate, demo data) and serve on http://127.0.0.1:8000/"
	@echo "make test          run the test suite (SQLite, or PostgreSQL when DATABASE_URL is set)"
	@echo "make lint          ruff check, ruff format --check and lint-imports (the app floors)"
	@echo "make format        ruff format and ruff check --fix"
	@echo "make typecheck     mypy (configuration in pyproject.toml)"
	@echo "make lint-imports  import-linter: the apps' import contracts"
	@echo "make check         manage.py check, missing migrations, check --deploy under production settings"
	@echo "make bench         benchmarks on PostgreSQL (bench/README.md); SCALES=0.02,0.2 for several"
	@echo "make codes         the demo users' current TOTP codes"
	@echo "make install       only create the virtualenv and install the development lock ($(DEV_LOCK))"
	@echo "make lock          recompile $(RUNTIME_LOCK) and $(DEV_LOCK) from pyproject.toml"
	@echo "make clean         remove the virtualenv and the development data in var/"

$(PY):
	$(PYTHON) -m venv $(VENV)

# --require-hashes: every package, dependencies included, must be pinned in the lock with the
# hash of the file that is installed.
$(STAMP): $(DEV_LOCK) | $(PY)
	$(PY) -m pip install --disable-pip-version-check --no-input --quiet --require-hashes -r $(DEV_LOCK)
	touch $@

install: $(STAMP)

# The runtime lock first; the development lock keeps every runtime pin (-c) and adds the tools.
# pip-compile keeps the pins already in a lock file unless LOCK_ARGS asks to move them.
lock: $(STAMP)
	$(PIP_COMPILE) --output-file $(RUNTIME_LOCK) pyproject.toml
	$(PIP_COMPILE) --allow-unsafe --extra dev --constraint $(RUNTIME_LOCK) --output-file $(DEV_LOCK) pyproject.toml

# make run is a local development server over plain http, so DEBUG is on (it turns off
# the SSL redirect and secure cookies). Production never runs `make run`. honcho runs the
# Procfile's web (Django's development server), worker and beat with prefixed output, and stops
# all of them when one dies or on Ctrl-C; web prints the URL and the demo sign-ins once it listens.
run: export DJANGO_DEBUG := 1
run: $(STAMP)
	$(PY) manage.py migrate --no-input
	@mkdir -p $(DATA_DIR)
	@$(PY) manage.py demo > $(DEMO_OUT) 2>&1 || { cat $(DEMO_OUT); echo "manage.py demo failed" >&2; exit 1; }
	PATH="$(abspath $(VENV))/bin:$$PATH" PYTHONUNBUFFERED=1 PIM_DEMO_SIGN_INS="$(abspath $(DEMO_OUT))" \
	    $(VENV)/bin/honcho start --no-colour --port 8000

codes: export DJANGO_DEBUG := 1
codes: $(STAMP)
	@$(PY) manage.py demo --codes

# pytest exits 5 when it collected no test: that stays a failure, with a clear message.
test: $(STAMP)
	@$(PY) -m pytest --ds=tests.settings -n $(PYTEST_WORKERS) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure" >&2; fi; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# What to check comes from [tool.mypy] in pyproject.toml (its `files`).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The contracts (app floors) come from import-linter's configuration in pyproject.toml.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

# The last step runs the deploy checks under production-like settings: DEBUG off, a long
# random secret key and audit chain key (any *_FILE variant in the environment would win, so
# it is removed).
check: $(STAMP)
	DJANGO_DEBUG=1 $(PY) manage.py check --fail-level WARNING
	DJANGO_DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	env -u DJANGO_SECRET_KEY_FILE -u PIM_AUDIT_CHAIN_KEY_FILE DJANGO_DEBUG=0 DJANGO_ALLOWED_HOSTS=pim.example.org \
	    DJANGO_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
	    PIM_AUDIT_CHAIN_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(32))')" \
	    $(PY) manage.py check --deploy --fail-level WARNING

# `make bench SCALES=0.02,0.2,1.0` runs several scales in one go, with each figure's growth.
SCALES ?= 0.02
bench: $(STAMP)
	$(PY) bench/run.py --scales $(SCALES) $(BENCH_ARGS)

# Only the default data folder: a PIM_DATA_DIR set elsewhere is never removed by make.
clean:
	rm -rf $(VENV) var
