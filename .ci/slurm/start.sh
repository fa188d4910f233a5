#!/usr/bin/env bash
# Start a real single-node SLURM (with munge and one fake GPU) for CI.
# Idempotent: daemons already up with the same config -> no-op; config changed
# -> clean restart. Needs root; no systemd. Stop with .ci/slurm/stop.sh.
# Facts and pitfalls: .ci/slurm/README.md.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

WAIT_S=${SLURM_WAIT_S:-60}
CONF_DIR=/etc/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
LOG_DIR=/var/log/slurm

log() { echo "[slurm/start] $*" >&2; }
die() {
    log "ERROR: $*"
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        [[ -f $f ]] && { echo "----- tail $f" >&2; tail -n 40 "$f" >&2; }
    done
    command -v sinfo >/dev/null && { echo "----- sinfo -N -l" >&2; sinfo -N -l >&2 || true; }
    exit 1
}
# pid_alive PIDFILE NAME: the process in PIDFILE is running and is NAME.
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]]
}
# stop_pid PIDFILE NAME: TERM, wait up to 10 s, then KILL.
stop_pid() {
    local pid i
    pid_alive "$1" "$2" || { rm -f "$1"; return 0; }
    pid=$(<"$1")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        [[ -d /proc/$pid ]] || break
        sleep 0.2
    done
    [[ -d /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
}

[[ $(id -u) == 0 ]] || die "must run as root"

# --- (a) packages -----------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm munge"
    apt-get install -y -q slurm-wlm munge \
        || { apt-get update -q && apt-get install -y -q slurm-wlm munge; } \
        || die "apt-get install slurm-wlm munge failed"
fi

# --- (b) munge --------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if ! pid_alive "$MUNGE_PID" munged; then
    log "starting munged"
    rm -f "$MUNGE_PID" /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged || die "munged failed to start"
fi
for i in $(seq 20); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.25
done
munge -n | unmunge >/dev/null || die "munge -n | unmunge failed"

# --- (c) configuration ------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_TOTAL=$(free -m | awk '/^Mem:/{print $2}')
REAL_MEM=$((MEM_TOTAL * 95 / 100))           # leave a little for the OS
DEF_MEM=$((REAL_MEM / CPUS < 1024 ? REAL_MEM / CPUS : 1024))

install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
new_conf=$(mktemp) new_gres=$(mktemp)
trap 'rm -f "$new_conf" "$new_gres"' EXIT
cat >"$new_conf" <<EOF
# Written by .ci/slurm/start.sh: one node, one fake GPU, no accounting.
ClusterName=ci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=${DEF_MEM}
# Finished jobs stay visible to squeue for 300 s (plugin's squeue status mode).
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
GresTypes=gpu
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MEM} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF
# File= is required: without it the node goes INVAL. /dev/null = fake device.
echo "NodeName=${HOST} Name=gpu File=/dev/null" >"$new_gres"

changed=0
cmp -s "$new_conf" "$CONF_DIR/slurm.conf" || changed=1
cmp -s "$new_gres" "$CONF_DIR/gres.conf" || changed=1
if ((changed)); then
    log "writing $CONF_DIR/slurm.conf and gres.conf (node $HOST, $CPUS CPUs, ${REAL_MEM} MB)"
    install -m 0644 "$new_conf" "$CONF_DIR/slurm.conf"
    install -m 0644 "$new_gres" "$CONF_DIR/gres.conf"
fi

# --- (d) daemons (no systemd: run directly, they daemonise) -----------------
if ((changed)) && { pid_alive "$CTLD_PID" slurmctld || pid_alive "$SLURMD_PID" slurmd; }; then
    log "config changed: restarting slurmctld and slurmd"
    stop_pid "$SLURMD_PID" slurmd
    stop_pid "$CTLD_PID" slurmctld
fi
if ! pid_alive "$CTLD_PID" slurmctld; then
    log "starting slurmctld"
    /usr/sbin/slurmctld || die "slurmctld failed to start"
fi
slurmd_t0=0
if ! pid_alive "$SLURMD_PID" slurmd; then
    log "starting slurmd"
    slurmd_t0=$(date +%s)
    /usr/sbin/slurmd || die "slurmd failed to start"
fi

# Epoch at which the running slurmd registered with slurmctld (0 if unknown).
# Needed because a restarted slurmctld restores the old node state: sinfo may
# say "idle" before the new slurmd has registered (or even if it died).
registered_at() {
    local t
    t=$(scontrol show node "$HOST" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
    date -d "$t" +%s 2>/dev/null || echo 0
}

t_start=$SECONDS
deadline=$((SECONDS + WAIT_S))
resumed=0
state=
while ((SECONDS < deadline)); do
    if ((SECONDS > t_start + 5)); then  # daemons write their PID file late
        pid_alive "$CTLD_PID" slurmctld || die "slurmctld exited"
        pid_alive "$SLURMD_PID" slurmd || die "slurmd exited"
    fi
    state=$(sinfo -h -o %t 2>/dev/null | head -n1 || true)
    if ((slurmd_t0)) && (($(registered_at) < slurmd_t0 - 1)); then
        state="unregistered:$state"
    fi
    case $state in
        idle | mix | alloc) break ;;  # up (mix/alloc: jobs already running)
        *drain* | down | inval)
            # e.g. left drained by an earlier run: resume once.
            if ((!resumed)); then
                log "node state '$state': resuming"
                scontrol update NodeName="$HOST" State=RESUME || true
                resumed=1
            fi ;;
    esac
    sleep 1
done
case $state in
    idle | mix | alloc) log "ready: node $HOST is $state ($((SECONDS))s)" ;;
    *) die "node $HOST not idle after ${WAIT_S}s (state: '${state:-none}')" ;;
esac
