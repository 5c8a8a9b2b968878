# movierec: two commands set everything up on a fresh machine.
#   make demo   venv + pinned deps, fetch ml-100k, train EmbeddingNet and baselines on u1,
#               print their metrics side by side and a top-10 list for user 196
#   make test   the whole suite (what CI runs), Surprise side-by-side tests included

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MOVIEREC := $(VENV)/bin/movierec
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
# Tests share one dataset cache inside the checkout, so ml-100k is fetched once per clone.
TEST_CACHE ?= $(CURDIR)/.cache/movierec

.PHONY: demo test lint format venv clean soak results bench bench-serve readme-table

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[serve,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(MOVIEREC) fetch ml-100k
	$(MOVIEREC) compare --data ml-100k --split u1 --models default,embedding-net,mf,bias,popularity --out runs --overwrite
	$(MOVIEREC) recommend runs/default --user 196 -k 10

test: $(BENCH_STAMP)
	@[ -x /usr/bin/chromium ] || echo "notice: /usr/bin/chromium is missing, so the browser tests"\
		"will be skipped; install it with: apt-get update && apt-get install -y chromium"\
		"(bash .ci/run does this itself when run as root)"
	MOVIEREC_HOME=$(TEST_CACHE) $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) .cache runs .pytest_cache

runs/embedding-net/manifest.json: $(STAMP)
	$(MOVIEREC) train --data ml-100k --split u1 --model embedding-net --out runs/embedding-net

# 10 minutes of mixed requests at 16 clients; memory and fds sampled each minute (not in CI).
soak: runs/embedding-net/manifest.json
	$(PY) benchmarks/soak.py --run runs/embedding-net --clients 16 --minutes 10 \
		--out benchmarks/results/soak.json

# Training speed (reference DataLoader, fp32, bf16, compile, --fast, row-wise), roofline against
# torch.mm, time to quality next to Surprise's SVD/SVDpp, inference latency; one process.
bench: $(BENCH_STAMP)
	$(PY) benchmarks/bench.py --out benchmarks/results/bench.json

# Load benchmark of the server: 16 clients for 60 s on /users/{id}/recommendations.
bench-serve: runs/embedding-net/manifest.json
	$(PY) benchmarks/bench_serve.py --run runs/embedding-net --clients 16 --seconds 60 \
		--out benchmarks/results/serve.json

# The bench extra (scikit-surprise, compiled from source) only for the side-by-side benchmarks.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[bench]"
	touch $(BENCH_STAMP)

# docs/results.md: the ranking table (every model and objective, 3 seeds) and the rating tables
# (u1 x 3 seeds and 5-fold, every configs/ml100k/*.toml beside Surprise's models); the stacking
# sections (eight refit members and their ridge blend, u1 x 3 seeds and 5-fold; member runs kept
# in runs/blend: delete it after a code change); the item cold-start table.
results: $(BENCH_STAMP)
	$(PY) benchmarks/ranking.py
	$(PY) benchmarks/rating_results.py --jobs 2
	$(PY) benchmarks/blend.py
	$(PY) benchmarks/blend.py --folds
	$(PY) benchmarks/item_cold_start.py

# README's table of the four models on ml-100k u1.
readme-table: $(STAMP)
	$(PY) benchmarks/readme_table.py
