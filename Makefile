# Tradecore — the two commands a new user needs:
#   make up     set up (virtualenv, build) and start the mesh in the background
#   make test   set up (virtualenv, build, dev tools, Node client deps) and run every test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
BUILD_DEPS := "scikit-build-core>=1.0" "pybind11>=2.13" "grpcio-tools>=1.70,<1.82" "googleapis-common-protos>=1.63"

.PHONY: up down status setup setup-dev test test-unit test-cpp bench lint format clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Build and install the package (C++ core, CUDA kernels when nvcc is present, generated
# gRPC code and the Envoy descriptor set) into the virtualenv.
setup: $(PY)
	$(PIP) install --quiet $(BUILD_DEPS)
	$(PIP) install --quiet --no-build-isolation .

# Editable: python/tradecore, services/ (tradecore_services) and gateway/ (tradecore_gateway) are
# imported from the checkout, by tests and by the mesh's child processes alike, so an edit needs
# no reinstall. C++ and proto changes do: rerun `make setup-dev`.
setup-dev: $(PY)
	$(PIP) install --quiet $(BUILD_DEPS)
	$(PIP) install --quiet --no-build-isolation -e ".[dev]"
	npm install --prefix tests/integration/node --no-audit --no-fund --silent

up: setup
	$(VENV)/bin/tradecore up

down:
	$(VENV)/bin/tradecore down

status:
	$(VENV)/bin/tradecore status

test: setup-dev test-cpp
	$(PY) -m pytest tests

test-unit: setup-dev
	$(PY) -m pytest tests/unit

# The C++ unit tests (core/cpp/tests, registered with ctest): the core without Python or CUDA.
CPP_TEST_BUILD ?= build/cpp-tests
test-cpp:
	cmake -S . -B $(CPP_TEST_BUILD) -DTC_TESTS=ON -DTC_CUDA=OFF
	cmake --build $(CPP_TEST_BUILD) --parallel
	ctest --test-dir $(CPP_TEST_BUILD) --output-on-failure

bench: setup-dev
	$(PY) -m pytest bench --benchmark-json bench/results/latest.json
	$(PY) bench/summarize.py bench/results/latest.json

lint:
	$(VENV)/bin/ruff check python services gateway proto tests bench
	$(VENV)/bin/ruff format --check python services gateway proto tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/clang-format --dry-run -Werror $$(git ls-files 'core/*.cpp' 'core/*.hpp' 'core/*.cu' 'python/bindings/*.cpp' 'python/bindings/*.hpp')

format:
	$(VENV)/bin/ruff check --fix python services gateway proto tests bench
	$(VENV)/bin/ruff format python services gateway proto tests bench
	$(VENV)/bin/clang-format -i $$(git ls-files 'core/*.cpp' 'core/*.hpp' 'core/*.cu' 'python/bindings/*.cpp' 'python/bindings/*.hpp')

clean:
	rm -rf build dist $(VENV) tests/integration/node/node_modules
