# The README's two commands: `make run` and `make test`. Little else lives here.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
RESIDENTS_PORT ?= 8000
CALLCENTER_PORT ?= 8001
ADMIN_PORT ?= 8002
export MADOGUCHI_INSTANCE ?= $(CURDIR)/instance

.PHONY: run test install system-deps

$(BIN)/madoguchi: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/madoguchi

## Set up everything and serve the product with demo data on SQLite.
run: install
	$(BIN)/madoguchi keys init --if-missing
	$(BIN)/madoguchi db upgrade
	$(BIN)/madoguchi demo --if-empty
	@echo ""
	@echo "  Madoguchi is running (SQLite: $(MADOGUCHI_INSTANCE)/madoguchi.sqlite3)"
	@echo "  住民向け予約サイト (residents):   http://$(HOST):$(RESIDENTS_PORT)/"
	@echo "  コールセンター (call center):     http://$(HOST):$(CALLCENTER_PORT)/   (operator / supervisor / fax)"
	@echo "  職員用 管理 (back office, staff): http://$(HOST):$(ADMIN_PORT)/   (demo accounts above; TOTP enrolment at first sign-in)"
	@echo "  E-mails and SMS sent by the demo are written to ./outbox/ (.eml files and outbox/sms/)."
	@echo "  FAX: files dropped into $(MADOGUCHI_INSTANCE)/fax-inbox/ join the FAX queue (or upload them on the FAX screen)."
	@echo "  Stop with Ctrl+C."
	@echo ""
	HOST=$(HOST) RESIDENTS_PORT=$(RESIDENTS_PORT) CALLCENTER_PORT=$(CALLCENTER_PORT) ADMIN_PORT=$(ADMIN_PORT) scripts/serve

## Debian packages the tests use (Chromium, Japanese fonts, PostgreSQL, poppler); as root only.
system-deps:
	scripts/system-deps

## Lint, architecture rules, and the whole suite on SQLite and on PostgreSQL.
test: install system-deps
	scripts/test
