# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Point the data-directory setting at the shared research data when it sits beside the checkout.
ifneq ($(wildcard ../shared/data),)
export REENG_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: demo test venv browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[reuse]'
	touch $(STAMP)

demo: venv
	$(BIN)/reeng study

# The report test renders HTML in Debian's headless Chromium; install it when we can (root + apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "note: could not install chromium; the report screenshot test will be skipped"; \
	  else echo "note: chromium missing and not installable here; the report screenshot test will be skipped"; fi; }

test: venv browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info
