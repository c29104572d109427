#!/usr/bin/env bash
# Install (if needed) and start a real single-node Slurm cluster on this
# machine: munged + slurmctld + slurmd, all on 127.0.0.1, partition "debug".
#
# Idempotent: if slurmctld answers and the node is usable, exits 0 at once.
# Needs root, Debian 12 (bookworm) packages; works without systemd.
#
# Usage: scripts/slurm/start.sh            (exit 0 = node idle and usable)
# Env:   SLURM_START_TIMEOUT  seconds to wait for readiness (default 60)
set -euo pipefail

TIMEOUT="${SLURM_START_TIMEOUT:-60}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
CGROUP_CONF="$CONF_DIR/cgroup.conf"
LOG_DIR=/var/log/slurm
CTLD_LOG="$LOG_DIR/slurmctld.log"
SLURMD_LOG="$LOG_DIR/slurmd.log"
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PIDFILE=/run/munge/munged.pid
MUNGE_LOG=/var/log/munge/munged.log
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
PARTITION=debug

T0=$(date +%s.%N)
log() { printf '[slurm-start +%6.1fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{print a-b}')" "$*"; }

dump_logs() {
    local f
    for f in "$MUNGE_LOG" "$CTLD_LOG" "$SLURMD_LOG"; do
        if [ -f "$f" ]; then
            echo "----- tail -n 30 $f -----" >&2
            tail -n 30 "$f" >&2 || true
        else
            echo "----- $f: (no such file) -----" >&2
        fi
    done
}

die() {
    echo "[slurm-start] ERROR: $*" >&2
    dump_logs
    exit 1
}

# Is the process named in pidfile $1 alive (and not a zombie)?
pid_alive() {
    local pidfile=$1 pid state
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
    [ "$state" != Z ] && [ "$state" != X ]
}

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { sinfo -h -N -o %t 2>/dev/null | head -n1; }

# gen_conf: write the wanted slurm.conf / cgroup.conf to temp files
# NEW_CONF / NEW_CG (NEW_CG empty when no cgroup.conf is wanted).
gen_conf() {
    HOST=$(hostname -s)
    # First line of `slurmd -C`: NodeName=... CPUs=... Boards=... SocketsPerBoard=...
    #   CoresPerSocket=... ThreadsPerCore=... RealMemory=...
    NODE_LINE=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n1)
    [ -n "$NODE_LINE" ] || { echo "slurmd -C printed no NodeName line" >&2; return 1; }
    # slurmd -C names the node after `hostname -s`; make sure of it.
    NODE_LINE=$(echo "$NODE_LINE" | sed "s/^NodeName=[^ ]*/NodeName=$HOST/")

    # Process tracking: proctrack/cgroup (freezer cgroup) is the only one here
    # that kills processes which ignore SIGTERM or setsid() away from the job.
    # Slurm 22.05's cgroup/v1 plugin needs a v1 freezer hierarchy mounted.
    if awk '$3=="cgroup" && $4 ~ /(^|,)freezer(,|$)/ {f=1} END{exit !f}' /proc/mounts; then
        PROCTRACK=proctrack/cgroup
        CGROUP_MNT=$(awk '$3=="cgroup" && $4 ~ /(^|,)freezer(,|$)/ {print $2; exit}' /proc/mounts)
        CGROUP_ROOT=$(dirname "$CGROUP_MNT")
    else
        PROCTRACK=proctrack/linuxproc
        CGROUP_ROOT=""
        PROCTRACK_WARN=1
    fi

    NEW_CONF=$(mktemp)
    cat >"$NEW_CONF" <<EOF
# Written by hpsearch scripts/slurm/start.sh -- single-node test cluster.
ClusterName=hpsearch
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=${STATE_DIR}
SlurmdSpoolDir=${SPOOL_DIR}
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${CTLD_LOG}
SlurmdLogFile=${SLURMD_LOG}
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

ProctrackType=${PROCTRACK}
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none

SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0

ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0

${NODE_LINE} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF

    NEW_CG=""
    if [ "$PROCTRACK" = proctrack/cgroup ]; then
        NEW_CG=$(mktemp)
        cat >"$NEW_CG" <<EOF
# Written by hpsearch scripts/slurm/start.sh
CgroupPlugin=cgroup/v1
CgroupMountpoint=${CGROUP_ROOT}
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
EOF
    fi
}

# ---------------------------------------------------------------- fast path
if [ "$(id -u)" -ne 0 ]; then
    echo "[slurm-start] ERROR: must run as root" >&2
    exit 1
fi
# Serialize concurrent callers (e.g. parallel test workers).
if command -v flock >/dev/null 2>&1; then
    exec 9>/run/hpsearch-slurm-start.lock
    flock -w "$((TIMEOUT + 120))" 9 || { echo "[slurm-start] ERROR: lock busy" >&2; exit 1; }
fi

PROCTRACK_WARN=0
if command -v scontrol >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && [ -f "$CONF" ] \
    && gen_conf && cmp -s "$NEW_CONF" "$CONF" \
    && { [ -z "$NEW_CG" ] || cmp -s "$NEW_CG" "$CGROUP_CONF"; } \
    && pid_alive "$MUNGE_PIDFILE" && pid_alive "$CTLD_PID" && pid_alive "$SLURMD_PID" \
    && ctld_up; then
    st=$(node_state)
    case "$st" in
        idle|mix|mixed|alloc|allocated|comp|completing)
            rm -f "$NEW_CONF" "$NEW_CG"
            log "Slurm already up (node state: $st); nothing to do"
            exit 0 ;;
    esac
    log "Slurm daemons running but node state is '${st:-?}'; (re)starting what is needed"
fi

# ---------------------------------------------------------------- install
PKGS="slurmctld slurmd slurm-client munge"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    log "installing:$missing"
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # Keep maintainer scripts from starting daemons (no systemd here).
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup_policy() { [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
    trap cleanup_policy EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/tmp/slurm-apt-update.log 2>&1 \
        || { cat /tmp/slurm-apt-update.log >&2; cleanup_policy; die "apt-get update failed"; }
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/tmp/slurm-apt-install.log 2>&1 \
        || { tail -n 40 /tmp/slurm-apt-install.log >&2; cleanup_policy; die "apt-get install failed"; }
    cleanup_policy
    trap - EXIT
    log "packages installed ($(dpkg-query -W -f='${Version}' slurmctld), munge $(dpkg-query -W -f='${Version}' munge))"
else
    log "packages already installed"
fi

# ---------------------------------------------------------------- munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    if command -v mungekey >/dev/null 2>&1; then
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if pid_alive "$MUNGE_PIDFILE" && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    rm -f "$MUNGE_PIDFILE" /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged 9>&- || die "munged failed to start"
    ok=0
    for _ in $(seq 1 50); do
        if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    [ "$ok" = 1 ] || die "munge -n | unmunge does not work"
fi

# ---------------------------------------------------------------- config
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$SPOOL_DIR"
install -d -m 0700 "$STATE_DIR"
rm -f "${NEW_CONF:-}" "${NEW_CG:-}"
gen_conf || die "could not generate slurm.conf"
[ "$PROCTRACK_WARN" = 0 ] || log "WARNING: no cgroup-v1 freezer mounted; using proctrack/linuxproc" \
    "(processes that ignore SIGTERM or call setsid may survive scancel)"
conf_changed=0
if ! cmp -s "$NEW_CONF" "$CONF"; then
    install -m 0644 "$NEW_CONF" "$CONF"; conf_changed=1
fi
if [ -n "$NEW_CG" ]; then
    if ! cmp -s "$NEW_CG" "$CGROUP_CONF"; then
        install -m 0644 "$NEW_CG" "$CGROUP_CONF"; conf_changed=1
    fi
    rm -f "$NEW_CG"
else
    [ -f "$CGROUP_CONF" ] && { rm -f "$CGROUP_CONF"; conf_changed=1; }
fi
rm -f "$NEW_CONF"
if [ "$conf_changed" = 1 ]; then
    log "wrote $CONF ($PROCTRACK, node: $NODE_LINE)"
else
    log "$CONF unchanged"
fi

# ---------------------------------------------------------------- daemons
stop_pidfile() {   # stop the daemon named in pidfile $1 (only that pid)
    local pidfile=$1 pid
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(tr -dc '0-9' <"$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        pid_alive "$pidfile" || break
        sleep 0.1
    done
    pid_alive "$pidfile" && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

if [ "$conf_changed" = 1 ]; then
    # Daemons started with an older config must re-read it.
    if pid_alive "$CTLD_PID" || pid_alive "$SLURMD_PID"; then
        log "configuration changed: restarting running Slurm daemons"
    fi
    stop_pidfile "$SLURMD_PID"
    stop_pidfile "$CTLD_PID"
fi

if pid_alive "$CTLD_PID"; then
    log "slurmctld already running (pid $(cat "$CTLD_PID"))"
else
    rm -f "$CTLD_PID"
    log "starting slurmctld"
    slurmctld 9>&- || die "slurmctld failed to start"
fi

# slurmctld must answer before slurmd registers (otherwise slurmd retries).
deadline=$(( $(date +%s) + TIMEOUT ))
until ctld_up; do
    pid_alive "$CTLD_PID" || die "slurmctld exited during startup"
    [ "$(date +%s)" -lt "$deadline" ] || die "slurmctld not UP after ${TIMEOUT}s (scontrol ping: $(scontrol ping 2>&1 | tr '\n' ' '))"
    sleep 0.2
done
log "slurmctld is UP"

if pid_alive "$SLURMD_PID"; then
    log "slurmd already running (pid $(cat "$SLURMD_PID"))"
else
    rm -f "$SLURMD_PID"
    log "starting slurmd"
    SLURMD_STARTED_AT=$(date +%Y-%m-%dT%H:%M:%S)
    slurmd 9>&- || die "slurmd failed to start"
fi

# Time slurmd last registered with slurmctld ("None" before it ever did).
slurmd_start_time() {
    scontrol -o show node "$HOST" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p'
}

resumed=0
while :; do
    st=$(node_state)
    registered=1
    if [ -n "${SLURMD_STARTED_AT:-}" ]; then
        # A restarted slurmctld shows the node state it saved; wait until the
        # slurmd started just now has registered (timestamps sort as strings).
        sst=$(slurmd_start_time)
        [[ "$sst" > "$SLURMD_STARTED_AT" || "$sst" == "$SLURMD_STARTED_AT" ]] || registered=0
    fi
    case "$st" in
        idle|mix|mixed|alloc|allocated|comp|completing)
            [ "$registered" = 1 ] && break ;;
        down*|drain*|drng*|fail*)
            if [ "$resumed" = 0 ]; then
                log "node state '$st': resuming it"
                scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi ;;
    esac
    pid_alive "$SLURMD_PID" || die "slurmd exited during startup"
    pid_alive "$CTLD_PID" || die "slurmctld exited during startup"
    [ "$(date +%s)" -lt "$deadline" ] || die "node not idle after ${TIMEOUT}s (sinfo: $(sinfo -N 2>&1 | tr '\n' ' '))"
    sleep 0.2
done
log "Slurm is up: node $HOST state '$st', partition '$PARTITION' ($PROCTRACK)"
