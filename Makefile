# Fresh machine: `make demo` or `make test`. Both set up what is missing first (idempotent).
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.setup-stamp

.PHONY: setup demo test test-fast bench serve lock clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock Makefile $(wildcard data/*/setup.sh) data/debian_packages.sh apps/setup.sh
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -c requirements.lock -e '.[test]'  # exact versions from the lock
	for s in data/*/setup.sh; do [ -f "$$s" ] && bash "$$s" || exit 1; done
	bash apps/setup.sh  # Debian's chromium for the web app's browser test (tests/apps/test_web.py)
	touch $(STAMP)

demo: setup
	$(PY) -m apps.demo --out outputs/demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) -m apps.bench --json reports/bench_backbone.json

# the web app on http://127.0.0.1:7860 (PORT=... to change it)
serve: setup
	$(PY) -m apps.web

# rewrite requirements.lock from what the venv holds (after changing dependencies in pyproject.toml)
lock: setup
	$(PIP) install -q -e '.[test]'
	{ head -2 requirements.lock; $(PIP) freeze --exclude-editable | grep -v '^-e' | sort -f; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

clean-venv:
	rm -rf .venv
