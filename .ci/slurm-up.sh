#!/usr/bin/env bash
# slurm-up.sh - start a throwaway single-node Slurm cluster with accounting, so the
# tests marked `slurm` submit real sbatch job arrays (matbench run --executor slurm).
#
# Debian/Ubuntu, as root: installs slurm-wlm, munge, slurmdbd and mariadb-server when
# missing, writes /etc/slurm/slurm.conf (only one this script wrote, or none), starts
# munged, MariaDB, slurmdbd, slurmctld and slurmd without systemd or cgroups, and waits
# until the node is idle. Idempotent: daemons already running are left as they are.
# Stop with .ci/slurm-down.sh, which stops only what this script started.
#
# Accounting is not optional: submitit learns that a task was cancelled or timed out
# from `sacct`; without slurmdbd such a task never counts as done.
#
# Environment:
#   MATBENCH_SLURM_DIR=/tmp/matbench-slurm   state, spool, logs, PID files
#   MATBENCH_SLURM_CPUS=8                    CPUs the node advertises (tasks at once);
#                                            may exceed the real count
#   MATBENCH_SLURM_PARTITION=debug           the one, default partition
#   MATBENCH_SLURM_WAIT_S=60                 how long to wait for each daemon
set -euo pipefail

STATE=${MATBENCH_SLURM_DIR:-/tmp/matbench-slurm}
CPUS=${MATBENCH_SLURM_CPUS:-8}
PARTITION=${MATBENCH_SLURM_PARTITION:-debug}
WAIT_S=${MATBENCH_SLURM_WAIT_S:-60}
NODE=$(hostname -s)
CONF=/etc/slurm/slurm.conf
DBDCONF=/etc/slurm/slurmdbd.conf
MARK="# written by matbench .ci/slurm-up.sh"
SOCK=/run/mysqld/mysqld.sock
DB=matbench_slurm_acct
T0=$SECONDS

say() { echo "slurm-up: $*" >&2; }
die() { say "error: $*"; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # wait_for WHAT CMD...: poll CMD until it succeeds or WAIT_S passes
    local what=$1 end=$((SECONDS + WAIT_S))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || { say "no $what after ${WAIT_S} s"; return 1; }
        sleep 0.25
    done
}

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a real cluster"
fi

# -- packages
missing=()
for p in slurm-wlm munge slurmdbd mariadb-server; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    mkdir -p "$STATE/log"
    # apt must not start the packaged services: we start our own copies below.
    added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    ok=1
    { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
            --no-install-recommends "${missing[@]}"; } >"$STATE/log/apt.log" 2>&1 || ok=0
    [ "$added_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$ok" = 1 ] || { tail -20 "$STATE/log/apt.log" >&2; die "apt-get failed"; }
    say "installed ${missing[*]} in $((SECONDS - T0)) s"
fi

# -- configuration
mkdir -p "$STATE"/run "$STATE"/log "$STATE"/spool/ctld "$STATE"/spool/d "$STATE"/munge "$STATE"/mysql
chmod 755 "$STATE" "$STATE"/run
chown slurm:slurm "$STATE"/spool/ctld "$STATE"/log
chown munge:munge "$STATE"/munge && chmod 700 "$STATE"/munge
chown mysql:mysql "$STATE"/mysql # MariaDB runs as mysql: its PID file and log go here
getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE $MARK" >>/etc/hosts
MEM=$(awk '/^MemAvailable:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
if [ -e "$CONF" ]; then # keep the memory figure stable across starts
    MEM=$(sed -n 's/^NodeName=.*RealMemory=\([0-9]*\).*/\1/p' "$CONF" | head -n1)
fi
conf=$(
    cat <<EOF
$MARK (a single-node test cluster; safe to delete)
ClusterName=matbenchci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups and no systemd: runs in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# SIGKILL follows SIGTERM after KillWait seconds (default 30)
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=0
if [ ! -e "$CONF" ] || [ "$conf" != "$(cat "$CONF")" ]; then
    mkdir -p /etc/slurm
    printf '%s\n' "$conf" >"$CONF.tmp" && chmod 644 "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
    changed=1
fi
cat >"$DBDCONF.tmp" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=$DB
EOF
chown slurm:slurm "$DBDCONF.tmp" && chmod 600 "$DBDCONF.tmp" # slurmdbd insists
mv "$DBDCONF.tmp" "$DBDCONF"

# -- munge
if ! alive "$STATE/munge/munged.pid" && ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/munge/munged.pid" \
        --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
    wait_for munged sh -c 'munge -n | unmunge' || die "munged did not start"
fi

# -- accounting: MariaDB, then slurmdbd
ADMIN=$(command -v mariadb-admin || command -v mysqladmin)
SQL=$(command -v mariadb || command -v mysql)
if ! "$ADMIN" --socket="$SOCK" ping >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] ||
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/log/mariadb-install.log" 2>&1
    install -d -o mysql -g root -m 755 /run/mysqld
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --socket="$SOCK" \
        --pid-file="$STATE/mysql/mariadbd.pid" --log-error="$STATE/mysql/mariadb.log" \
        </dev/null >/dev/null 2>&1 &
    wait_for MariaDB "$ADMIN" --socket="$SOCK" ping ||
        die "MariaDB did not start: $(tail -3 "$STATE/mysql/mariadb.log" 2>&1)"
    wait_for "MariaDB PID file" test -s "$STATE/mysql/mariadbd.pid"
fi
# A fresh controller restarts job ids at 1: old accounting rows with the same ids would
# answer sacct for new jobs, so a fresh controller gets an empty database too.
if ! alive "$STATE/run/slurmctld.pid" && [ ! -e "$STATE/spool/ctld/job_state" ] &&
    ! alive "$STATE/run/slurmdbd.pid"; then
    "$SQL" --socket="$SOCK" -e "DROP DATABASE IF EXISTS $DB;"
fi
"$SQL" --socket="$SOCK" -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
    GRANT ALL ON $DB.* TO 'slurm'@'localhost';"
alive "$STATE/run/slurmdbd.pid" || /usr/sbin/slurmdbd
wait_for slurmdbd sacctmgr -n -P show cluster || die "slurmdbd: $(tail -3 "$STATE/log/slurmdbd.log")"

# -- controller and node
if [ "$changed" = 1 ]; then # a new configuration needs fresh daemons
    for d in slurmd slurmctld; do
        if alive "$STATE/run/$d.pid"; then
            pid=$(cat "$STATE/run/$d.pid")
            kill "$pid"
            wait_for "$d to stop" sh -c "! kill -0 $pid"
        fi
    done
fi
alive "$STATE/run/slurmctld.pid" || /usr/sbin/slurmctld
wait_for slurmctld sinfo -h || die "slurmctld: $(tail -3 "$STATE/log/slurmctld.log")"
alive "$STATE/run/slurmd.pid" || /usr/sbin/slurmd -N "$NODE"
ready() { sinfo -h -n "$NODE" -o %T | grep -qE '^(idle|mixed|allocated|completing)$'; }
if ! wait_for "idle node $NODE" ready; then
    scontrol update nodename="$NODE" state=resume 2>/dev/null || true
    wait_for "idle node $NODE" ready || die "node $NODE is $(sinfo -h -n "$NODE" -o '%T %E')"
fi
say "local cluster ready in $((SECONDS - T0)) s: node $NODE, $CPUS CPUs, partition $PARTITION, accounting on (logs: $STATE/log)"
sinfo
