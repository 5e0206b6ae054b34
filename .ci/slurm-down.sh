#!/usr/bin/env bash
# slurm-down.sh - stop what .ci/slurm-up.sh started: cancel the test cluster's jobs, then
# stop slurmd, slurmctld, slurmdbd, MariaDB and munged, each only when its PID file
# (under MATBENCH_SLURM_DIR) names a live process of that name. Packages and the
# configuration stay, so the next start takes seconds.
set -uo pipefail

STATE=${MATBENCH_SLURM_DIR:-/tmp/matbench-slurm}
say() { echo "slurm-down: $*" >&2; }

stop() { # stop NAME PIDFILE
    local name=$1 file=$2 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if ! kill -0 "$pid" 2>/dev/null || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
        rm -f "$file"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 80); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$file"
    say "stopped $name"
}

if [ -s "$STATE/run/slurmctld.pid" ] && kill -0 "$(cat "$STATE/run/slurmctld.pid")" 2>/dev/null; then
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u)
    if [ -n "$jobs" ]; then
        say "cancelling jobs: $(echo $jobs)"
        scancel $jobs 2>/dev/null
        for _ in $(seq 1 40); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi
stop slurmd "$STATE/run/slurmd.pid"
stop slurmctld "$STATE/run/slurmctld.pid"
stop slurmdbd "$STATE/run/slurmdbd.pid"
stop mariadbd "$STATE/mysql/mariadbd.pid"
stop munged "$STATE/munge/munged.pid"
exit 0
