#!/usr/bin/env bash
# Smoke test of the local Slurm cluster started by scripts/slurm/start.sh.
#
#   (a) trivial job (default output file slurm-<id>.out in the submit dir,
#       environment propagation), plus a job that exits 3 (-> FAILED 3:0)
#   (b) 2-task job array writing SLURM_ARRAY_TASK_ID into files
#   (d) scancel of a running job: time until squeue no longer shows it;
#       and a job that ignores SIGTERM and setsid()s a child: all its
#       processes must be gone within 15 s of scancel
#   (c) only with --timelimit: --time=0:01 job running `sleep 300` with
#       --signal=B:USR1@30: when USR1 comes, when it is killed, final state
#
# Usage: scripts/slurm/smoke.sh [--timelimit] [--keep]
# Exit status: non-zero if any check fails.
set -uo pipefail

DO_TIMELIMIT=0
KEEP=0
for a in "$@"; do
    case "$a" in
        --timelimit) DO_TIMELIMIT=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $a" >&2; exit 2 ;;
    esac
done

command -v sbatch >/dev/null || { echo "sbatch not found: run scripts/slurm/start.sh first" >&2; exit 1; }
scontrol ping 2>/dev/null | grep -q 'is UP' || { echo "slurmctld is not UP: run scripts/slurm/start.sh first" >&2; exit 1; }

DIR=$(mktemp -d /tmp/hpsearch-slurm-smoke.XXXXXX)
chmod 755 "$DIR"
FAILS=0
SUMMARY=()

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.1f", a-b}'; }
say() { echo "[smoke] $*"; }
ok() { say "OK   $*"; SUMMARY+=("OK   $*"); }
fail() { say "FAIL $*"; SUMMARY+=("FAIL $*"); FAILS=$((FAILS + 1)); }

# Is PID alive? Zombies count as dead (PID 1 here reaps orphans late).
proc_alive() {
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Does squeue still show job (or array) $1?  (A purged job makes squeue exit 1.)
in_queue() { [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; }

# wait_gone JOBID TIMEOUT -> 0 when squeue no longer shows it
wait_gone() {
    local end=$(( $(date +%s) + $2 ))
    while in_queue "$1"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# wait_running JOBID TIMEOUT
wait_running() {
    local end=$(( $(date +%s) + $2 ))
    until [ "$(squeue -h -j "$1" -o %T 2>/dev/null)" = RUNNING ]; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# wait_file PATH TIMEOUT
wait_file() {
    local end=$(( $(date +%s) + $2 ))
    until [ -s "$1" ]; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# job_states JOBID -> "STATE exit" per job/task (from slurmctld memory,
# kept MinJobAge seconds after the end; no accounting database here)
job_states() {
    scontrol -o show job "$1" 2>/dev/null \
        | sed -n 's/.*JobState=\([A-Z_]*\).* ExitCode=\([0-9:]*\).*/\1 \2/p' | sort | uniq -c | sed 's/^ *//' | tr '\n' ';' | sed 's/;$//'
}

say "work dir: $DIR"

# ------------------------------------------------------------------ (a)
export HPSEARCH_SMOKE_VAR="hello-from-submitter"
cat >"$DIR/a.sh" <<'EOF'
#!/bin/bash
echo "job=$SLURM_JOB_ID"
echo "var=${HPSEARCH_SMOKE_VAR:-<unset>}"
echo "path=$PATH"
echo "pwd=$(pwd)"
echo "user=$(id -un)"
echo "python=$(command -v python3 || echo none)"
EOF
t=$(now)
A=$(cd "$DIR" && sbatch --parsable -J smoke-a "$DIR/a.sh") || A=""
if [ -z "$A" ]; then
    fail "(a) sbatch of trivial job failed"
else
    if wait_gone "$A" 60; then
        dt=$(since "$t")
        st=$(job_states "$A")
        out="$DIR/slurm-$A.out"
        if [ -f "$out" ] && grep -qx "job=$A" "$out" && [[ "$st" == *"COMPLETED 0:0"* ]]; then
            ok "(a) trivial job $A: submit->gone ${dt}s, state: $st output: $out"
        else
            fail "(a) trivial job $A: state '$st', output file $out: $(cat "$out" 2>&1 | head -3 | tr '\n' ' ')"
        fi
        if grep -qx "var=$HPSEARCH_SMOKE_VAR" "$out" 2>/dev/null; then
            ok "(a) environment propagates (exported var seen by job)"
        else
            fail "(a) exported variable not seen by the job"
        fi
        if grep -qxF "path=$PATH" "$out" 2>/dev/null; then
            ok "(a) PATH propagates unchanged ($(grep '^python=' "$out"))"
        else
            fail "(a) PATH differs in job: $(grep '^path=' "$out")"
        fi
        grep -qxF "pwd=$DIR" "$out" 2>/dev/null \
            && ok "(a) job cwd = submit dir" || fail "(a) job cwd: $(grep '^pwd=' "$out")"
    else
        fail "(a) trivial job $A still in queue after 60 s: $(squeue -j "$A" 2>&1 | tail -n +2)"
    fi
fi

# exit code -> FAILED 3:0
t=$(now)
E=$(sbatch --parsable -J smoke-exit3 -o "$DIR/exit3.out" --wrap 'exit 3') || E=""
if [ -n "$E" ] && wait_gone "$E" 60; then
    dt=$(since "$t")
    st=$(job_states "$E")
    [[ "$st" == *"FAILED 3:0"* ]] && ok "(a) 'exit 3' job $E -> $st (submit->gone ${dt}s)" \
        || fail "(a) 'exit 3' job $E -> '$st', expected FAILED 3:0"
else
    fail "(a) 'exit 3' job did not finish"
fi

# ------------------------------------------------------------------ (b)
cat >"$DIR/b.sh" <<EOF
#!/bin/bash
echo "\$SLURM_ARRAY_TASK_ID" > "$DIR/task_\${SLURM_ARRAY_TASK_ID}.txt"
echo "array_job=\$SLURM_ARRAY_JOB_ID task=\$SLURM_ARRAY_TASK_ID job=\$SLURM_JOB_ID"
EOF
t=$(now)
B=$(sbatch --parsable -J smoke-b --array=0-1 -o "$DIR/b_%A_%a.out" "$DIR/b.sh") || B=""
if [ -z "$B" ]; then
    fail "(b) sbatch of job array failed"
elif wait_gone "$B" 60; then
    dt=$(since "$t")
    good=1
    for i in 0 1; do
        [ "$(cat "$DIR/task_$i.txt" 2>/dev/null)" = "$i" ] || good=0
        grep -q "array_job=$B task=$i job=" "$DIR/b_${B}_$i.out" 2>/dev/null || good=0
    done
    st=$(job_states "$B")
    ids=$(sed -n 's/.*job=//p' "$DIR"/b_"${B}"_*.out 2>/dev/null | tr '\n' ' ')
    if [ "$good" = 1 ] && [[ "$st" == "2 COMPLETED 0:0" ]]; then
        ok "(b) array $B (2 tasks): submit->all gone ${dt}s, states: $st task job ids: $ids"
    else
        fail "(b) array $B: states '$st', files: $(head "$DIR"/task_* "$DIR"/b_* 2>&1 | tr '\n' ' ')"
    fi
else
    fail "(b) array $B still in queue after 60 s"
fi

# ------------------------------------------------------------------ (d)
# d1: plain running job, scancel -> gone from squeue
D=$(sbatch --parsable -J smoke-d1 -o "$DIR/d1.out" --wrap 'echo $$ > '"$DIR"'/d1.pid; sleep 300') || D=""
if [ -n "$D" ] && wait_running "$D" 60 && wait_file "$DIR/d1.pid" 10; then
    pid=$(cat "$DIR/d1.pid")
    t=$(now)
    scancel "$D"
    if wait_gone "$D" 60; then
        dt=$(since "$t")
        end=$(( $(date +%s) + 15 )); while proc_alive "$pid" && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1; done
        if proc_alive "$pid"; then
            fail "(d) job $D gone from squeue after ${dt}s but its shell (pid $pid) still alive"
        else
            ok "(d) scancel running job $D: scancel->gone from squeue ${dt}s, state: $(job_states "$D")"
        fi
    else
        fail "(d) job $D still in queue 60 s after scancel"
    fi
else
    fail "(d) job $D did not start running"
fi

# d2: job that ignores SIGTERM and setsid()s a child that ignores it too
cat >"$DIR/d2.sh" <<EOF
#!/bin/bash
trap '' TERM                       # ignored: inherited by every child below
echo \$\$ > "$DIR/d2.shell.pid"
setsid sleep 300 &                  # new session, escapes the process group
echo \$! > "$DIR/d2.setsid.pid"
( setsid bash -c 'echo \$\$ > "$DIR/d2.daemon.pid"; while :; do sleep 1; done' & ) # orphaned daemon
while :; do sleep 1; done
EOF
D2=$(sbatch --parsable -J smoke-d2 -o "$DIR/d2.out" "$DIR/d2.sh") || D2=""
if [ -n "$D2" ] && wait_running "$D2" 60 && wait_file "$DIR/d2.shell.pid" 10 \
    && wait_file "$DIR/d2.setsid.pid" 10 && wait_file "$DIR/d2.daemon.pid" 10; then
    pids="$(cat "$DIR/d2.shell.pid") $(cat "$DIR/d2.setsid.pid") $(cat "$DIR/d2.daemon.pid")"
    sleep 0.5
    t=$(now)
    scancel "$D2"
    end=$(( $(date +%s) + 15 ))
    while :; do
        alive=""
        for p in $pids; do proc_alive "$p" && alive="$alive $p"; done
        [ -z "$alive" ] && break
        [ "$(date +%s)" -lt "$end" ] || break
        sleep 0.1
    done
    dt=$(since "$t")
    if [ -n "$alive" ]; then
        fail "(d) TERM-ignoring/setsid job $D2: pids$alive still alive ${dt}s after scancel: $(ps -o pid,stat,cmd -p "$(echo $alive | tr " " ",")" 2>&1 | tail -n +2 | tr '\n' ';')"
        for p in $alive; do kill -KILL "$p" 2>/dev/null; done   # clean up what we started
    else
        ok "(d) TERM-ignoring + setsid job $D2: all 3 processes ($pids) dead ${dt}s after scancel"
    fi
    wait_gone "$D2" 60 && ok "(d) job $D2 gone from squeue $(since "$t")s after scancel, state: $(job_states "$D2")" \
        || fail "(d) job $D2 still in queue 60 s after scancel"
else
    fail "(d) job $D2 did not start running"
    [ -n "$D2" ] && scancel "$D2" 2>/dev/null
fi

# ------------------------------------------------------------------ (c)
if [ "$DO_TIMELIMIT" = 1 ]; then
    cat >"$DIR/c.sh" <<EOF
#!/bin/bash
start=\$(date +%s.%N)
echo "\$start" > "$DIR/c.start"
echo \$\$ > "$DIR/c.pid"
trap 'date +%s.%N >> "$DIR/c.usr1"' USR1
sleep 300 &
child=\$!
while [ -r /proc/\$child/stat ]; do wait \$child; done  # wait returns early on USR1
EOF
    C=$(sbatch --parsable -J smoke-c --time=0:01 --signal=B:USR1@30 -o "$DIR/c.out" "$DIR/c.sh") || C=""
    if [ -n "$C" ] && wait_running "$C" 60 && wait_file "$DIR/c.start" 10; then
        say "(c) job $C running with --time=0:01; waiting up to 180 s for the kill ..."
        if wait_gone "$C" 180; then
            tstart=$(cat "$DIR/c.start")
            dt=$(since "$tstart")
            st=$(job_states "$C")
            usr1="none"
            [ -s "$DIR/c.usr1" ] && usr1=$(awk -v b="$tstart" 'NR==1{printf "%.1fs", $1-b}' "$DIR/c.usr1")
            if [[ "$st" == *TIMEOUT* ]]; then
                ok "(c) --time=0:01 job $C: start->gone ${dt}s, state: $st; USR1 (B:USR1@30) at ${usr1} after start"
            else
                fail "(c) --time=0:01 job $C: state '$st' (expected TIMEOUT) after ${dt}s"
            fi
        else
            fail "(c) --time=0:01 job $C still in queue after 180 s"
            scancel "$C" 2>/dev/null
        fi
    else
        fail "(c) time-limit job did not start"
    fi
else
    say "(c) time-limit test skipped (pass --timelimit; takes ~90 s)"
fi

echo
echo "===== smoke summary ====="
printf '%s\n' "${SUMMARY[@]}"
if [ "$FAILS" -eq 0 ]; then
    echo "all checks passed"
    [ "$KEEP" = 1 ] || rm -rf "$DIR"
    exit 0
fi
echo "$FAILS check(s) FAILED (work dir kept: $DIR)"
exit 1
