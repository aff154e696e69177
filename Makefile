# Two commands matter: `make demo` and `make test`; both set everything up first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-known lint fuzz bench-data clean

setup: $(STAMP)

# torch is installed first and pinned: a plain `torch` requirement pulls a multi-GB CUDA build here.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,export,ray]'
	@touch $(STAMP)

demo: setup
	bash scripts/demo.sh

test: setup lint
	$(PY) -m pytest

# The searches' known answers over five seeds at the shipped configs' scale, ESAPN's learned policy against a
# random one over three seeds, NIS's layout against a random one and AutoCTR's evolution against random search over
# three seeds (~20 min on 2 cores): run it before
# resolving a change to a search or its defaults. `make test` leaves these slow tests out.
test-known: setup
	$(PY) -m pytest -m slow tests

# The fuzzed bad-input suite at length: 10,000 cases in two seeded shards of 5,000 (one per core), 4% through
# train and predict, 1% through search (make test runs 120, a fifth of them trained); tallies in fuzz_report_*.jsonl.
fuzz: setup
	rm -f fuzz_report_*.jsonl
	for shard in 1 2; do RECNAS_FUZZ_SEED=$$shard RECNAS_FUZZ_EXAMPLES=5000 RECNAS_FUZZ_SPREAD=100 \
	  RECNAS_FUZZ_REPORT=fuzz_report_$$shard.jsonl $(PY) -m pytest tests/fuzz -x -p no:cacheprovider \
	  --hypothesis-show-statistics > fuzz_$$shard.log 2>&1 & done; wait; tail -n 3 fuzz_1.log fuzz_2.log

lint: setup
	$(PY) -m ruff check recnas tests bench

bench-data: setup
	$(PY) bench/data_bench.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
