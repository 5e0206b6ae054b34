#!/usr/bin/env bash
# Runs a command while one busy process per core keeps every core loaded (pure Python
# spin loops, no stress-ng needed), then stops them: the test suite must pass like this,
# since no test may depend on how fast the machine is. MATBENCH_LOAD_PROCS overrides the
# count. Usage: .ci/with-load.sh make test
set -euo pipefail
procs="${MATBENCH_LOAD_PROCS:-$(nproc)}"
pids=()
stop_load() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; }
trap stop_load EXIT
for _ in $(seq "$procs"); do
    python3 -c "while True: pass" &
    pids+=("$!")
done
echo "load: ${procs} busy process(es) on $(nproc) core(s) while running: $*" >&2
"$@"
