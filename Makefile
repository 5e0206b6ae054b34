# Every target builds the local virtual environment on first use.
# TORCH_SPEC picks the torch build: the default lets pip choose (a CUDA build
# on Linux); TORCH_SPEC='torch==2.13.0' takes a CPU wheel where one is provided.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-all test-loaded smoke lint bench-compare bench-layers bench-approx bench-peer load-check clean-venv \
	slurm-up slurm-down gpu-check bench-flops bench-targets bench-collapse golden docs docs-pages docs-serve

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if [ "$(TORCH_SPEC)" = torch ] && ! command -v nvidia-smi >/dev/null 2>&1; then \
	  echo "setup: no NVIDIA GPU here, and pip's default torch on Linux is a CUDA build"; \
	  echo "setup: (about 2.7 GB of wheels). A CPU-only build is far smaller: stop (Ctrl-C)"; \
	  echo "setup: and pick one, e.g. TORCH_SPEC='torch==2.13.0' where a CPU wheel is"; \
	  echo "setup: provided, or PIP_EXTRA_INDEX_URL set to PyTorch's CPU wheel index."; \
	  if [ -t 1 ]; then sleep 5; fi; \
	fi
	@echo "setup: installing $(TORCH_SPEC) (pip shows its progress)"
	$(BIN)/python -m pip install --progress-bar on "$(TORCH_SPEC)"
	@echo "setup: installing matbench and its dependencies"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The fast set, for the inner loop: everything not marked slow, slurm or browser.
# Both spread the tests over one worker per core (pytest-xdist): most of the slow ones
# wait on subprocesses, so on 2 cores the whole set takes about half as long. Each worker,
# and what it starts, runs OpenMP on one thread: two workers' thread pools spinning on
# each other's cores (and CI's busy process) made the suite slower than one worker.
PYTEST_PARALLEL := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto
test: $(STAMP)
	$(PYTEST_PARALLEL) -m "not slow and not slurm and not browser"

# Everything (what CI runs): the slow tests, the Slurm cluster's and the browser's too.
test-all: $(STAMP)
	$(PYTEST_PARALLEL)

# Regenerate tests/golden/ (what the reading commands print for the committed runs) after
# changing an answer on purpose; read the diff before committing it.
golden: $(STAMP)
	MATBENCH_GOLDEN_UPDATE=1 $(BIN)/python -m pytest -q tests/test_golden.py

smoke: $(STAMP)
	$(BIN)/matbench run suites/smoke.yaml

# The whole suite with a busy process on every core: no test may depend on the machine's speed.
test-loaded: $(STAMP)
	bash .ci/with-load.sh $(MAKE) test-all

# eig_dk (batched eigh split over the cores, and unsplit) vs torch autograd vs a lower bound,
# printed as ratios at 64x48, 1x64, 32x64, 32x128 and 32x256, float32 (about 70 s); then the
# same with OpenMP's passive waiting, which frees the cores torch's own threads spin on.
# compare on two generated runs of 50,000 records each (from the committed throughput runs):
# its wall time and peak memory, against the target of 60 s and 2 GB.
bench-compare: $(STAMP)
	$(BIN)/python -m bench_cli.benchmarks.compare_scale --records 50000

bench-layers: $(STAMP)
	$(BIN)/python -m bench_cli.benchmarks.eig_dk_overhead
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m bench_cli.benchmarks.eig_dk_overhead

# mpa_lya vs the reference MPA_Lya (FastDifferentiableMatSqrt), imported at run time from
# PEER=path/to/torch_utils.py: speed ratios with forward and gradient errors beside them.
bench-peer: $(STAMP)
	$(BIN)/python -m bench_cli.benchmarks.mpa_lya_peer --peer "$(PEER)"

# throughput.yaml quiet, loaded, and loaded with one method 3x slower; compare's verdicts.
load-check: $(STAMP)
	$(BIN)/python -m bench_cli.benchmarks.load_check

# The performance targets, each a ratio with its 95% interval, met or not, with a profile
# where not met (about 2 minutes); PEER=path/torch_utils.py adds mpa_lya vs the reference.
bench-targets: $(STAMP)
	$(BIN)/python -m bench_cli.benchmarks.performance_targets $(if $(PEER),--peer "$(PEER)",)

# newton_schulz vs the same number of plain batched matmuls (about 80 s).
bench-approx: $(STAMP)
	$(BIN)/python -m bench_cli.benchmarks.newton_schulz_overhead

# Every declared FLOP model against what its method executes (FlopCounterMode and the
# LAPACK calls, priced nominally): a table of declared and counted FLOPs, seconds.
bench-flops: $(STAMP)
	$(BIN)/python -m bench_cli.benchmarks.flop_count

# DeepNC's features with and without the backbone's old final ReLU: collapse diagnostics.
bench-collapse: $(STAMP)
	$(BIN)/python -m bench_cli.benchmarks.relu_collapse

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site (docs/ -> site/): first a check that the generated pages match
# the committed runs, then mkdocs with --strict, so a broken link or anchor fails.
docs: $(STAMP)
	$(BIN)/python -m bench_cli.docs_pages --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Rewrite the generated pages (reproduced tables, task conclusions, which method) from
# the latest committed runs under results/.
docs-pages: $(STAMP)
	$(BIN)/python -m bench_cli.docs_pages

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean-venv:
	rm -rf $(VENV)

# A throwaway single-node Slurm cluster (root, Debian/Ubuntu) for the tests marked slurm.
slurm-up:
	bash .ci/slurm-up.sh

slurm-down:
	bash .ci/slurm-down.sh

# Every GPU measurement in one call (under 8 minutes on one H100/H200; EXTENDED=1 adds the
# compile, autocast, cold-start and eigh-sizes suites, minutes more): throughput,
# song2022 and gcp-cost at full size, the GPU stability sweep, advise at three sizes,
# and a comparison of each run with the committed CPU run. DEVICE=cpu rehearses it at
# quick sizes into .gpu-check-rehearsal/ (about a minute).
DEVICE ?= cuda
CHECK_RESULTS ?= $(if $(filter cpu,$(DEVICE)),.gpu-check-rehearsal,results)
gpu-check: $(STAMP)
	$(BIN)/python -m bench_cli.gpu_check --device $(DEVICE) --results $(CHECK_RESULTS) \
		$(if $(filter cpu,$(DEVICE)),--quick,) $(if $(EXTENDED),--extended,)
