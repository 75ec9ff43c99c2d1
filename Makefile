# The two commands: `make run` and `make test`. Everything else is a helper they call.
# The first Python >= 3.11 on PATH, newest first; `make PYTHON=/path/to/python3.12 ...` overrides it. Each candidate
# is run, not just looked up: a pyenv shim for a version that is not selected is on PATH but fails. Only the venv is
# made with it (and deploy-policies, pin-images, lock); everything else runs .venv/bin/python.
PYTHON_CANDIDATES := python3.14 python3.13 python3.12 python3.11 python3
PYTHON ?= $(or $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell $(p) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo $(p)))),$(error no Python >= 3.11 on PATH (tried $(PYTHON_CANDIDATES)): install one or run make PYTHON=/path/to/python3.11))
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test venv certs lint typecheck bench bench-hostile lock clean deploy-policies fuzz pin-images wheel

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

certs/tls.crt: | $(STAMP)
	$(BIN)/netguard certs generate --service netguard --namespace netguard --out certs/

certs: certs/tls.crt

## Start the webhook over TLS on https://127.0.0.1:8443 (admission) and :8444 (POST /v1/check) with the
## embedded engine and policies/.
run: $(STAMP) certs/tls.crt
	NETGUARD_BIND=$${NETGUARD_BIND:-127.0.0.1:8443} NETGUARD_CHECK_BIND=$${NETGUARD_CHECK_BIND:-127.0.0.1:8444} \
	  $(BIN)/netguard serve

## The whole test suite (the same command .ci/run runs): lint, strict typing, then pytest.
test: lint
	$(BIN)/python -m pytest

## Property tests against the independent oracle (tests/oracle), with thousands of examples.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/oracle tests/server/test_fuzz_admission.py -q -o timeout=0

lint: $(STAMP)
	$(BIN)/ruff check webhook tests bench deploy
	$(BIN)/mypy
	$(BIN)/lint-imports

## dist/netguard-<version>-py3-none-any.whl, with the catalog inside (webhook/catalog): `pip install dist/netguard-*.whl`.
## build/ first goes: setuptools reuses it, and a guardrail deleted from policies/ would stay in the wheel.
wheel: $(STAMP)
	rm -rf build dist
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .

## Copy policies/ into deploy/base/policies/ and regenerate the ConfigMap and volume files, and the rules for the
## policy kinds of webhook/kinds in the webhook configurations and ClusterRoles (tests/deploy fails when stale).
## No venv needed: the kind registry imports only the standard library.
deploy-policies:
	$(PYTHON) deploy/sync_policies.py

## Base images pinned by digest (needs crane or docker and a reachable registry); `--check` works offline.
pin-images:
	$(PYTHON) deploy/pin_images.py

bench: $(STAMP) certs/tls.crt
	$(BIN)/python bench/admission_bench.py

## Availability under hostile load (slow, idle and oversized clients) with the bare Flask baseline; docs/performance.md.
BENCH_HOSTILE_ARGS ?= --json
bench-hostile: $(STAMP) certs/tls.crt
	$(BIN)/python bench/hostile_bench.py $(BENCH_HOSTILE_ARGS)

## Refresh constraints.txt from a clean resolve (run by hand when dependencies change).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet -e '.[dev]'
	.lockvenv/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist
