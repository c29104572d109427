#!/usr/bin/env bash
# Stop the local Slurm cluster started by scripts/slurm/start.sh (best effort):
# cancel all jobs, then stop slurmd, slurmctld and munged, each by the pid in
# its pid file. Packages, config and state stay; start.sh brings it back.
#
# Usage: scripts/slurm/stop.sh [--keep-jobs]
#   --keep-jobs   do not scancel queued/running jobs first
# Always exits 0 unless a daemon could not be stopped.
set -uo pipefail

KEEP_JOBS=0
[ "${1:-}" = --keep-jobs ] && KEEP_JOBS=1

say() { echo "[slurm-stop] $*"; }

pid_of() { [ -s "$1" ] && tr -dc '0-9' <"$1"; }
alive() {   # alive PID: running and not a zombie
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# stop NAME PIDFILE EXPECTED_COMM
stop() {
    local name=$1 pidfile=$2 comm=$3 pid
    pid=$(pid_of "$pidfile" || true)
    if [ -z "$pid" ] || ! alive "$pid"; then
        say "$name not running"
        rm -f "$pidfile"
        return 0
    fi
    # Do not kill an unrelated process that reused a stale pid.
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$comm" ]; then
        say "$name: pid $pid in $pidfile is '$(cat "/proc/$pid/comm" 2>/dev/null)', not $comm; leaving it"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    if alive "$pid"; then
        say "ERROR: could not stop $name (pid $pid)"
        return 1
    fi
    rm -f "$pidfile"
    say "$name stopped (pid $pid)"
}

rc=0
if [ "$KEEP_JOBS" = 0 ] && command -v squeue >/dev/null 2>&1 \
    && scontrol ping 2>/dev/null | grep -q 'is UP'; then
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 150); do   # up to 15 s (KillWait=5)
            [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.1
        done
        left=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
        [ -n "${left// /}" ] && say "WARNING: jobs still in queue: $left"
    fi
fi

stop slurmd /run/slurmd.pid slurmd || rc=1
stop slurmctld /run/slurmctld.pid slurmctld || rc=1
stop munged /run/munge/munged.pid munged || rc=1
exit $rc
