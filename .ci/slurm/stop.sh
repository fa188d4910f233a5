#!/usr/bin/env bash
# Stop the daemons started by .ci/slurm/start.sh, by their PID files.
# Safe to run when nothing is running.
set -euo pipefail

# stop PIDFILE NAME: TERM the process if it is NAME, wait up to 10 s, then KILL.
stop() {
    local pid i
    if [[ -s $1 ]]; then
        pid=$(<"$1")
        if [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]]; then
            echo "[slurm/stop] stopping $2 (pid $pid)" >&2
            kill "$pid" 2>/dev/null || true
            for i in $(seq 50); do
                [[ -d /proc/$pid ]] || break
                sleep 0.2
            done
            if [[ -d /proc/$pid ]]; then
                echo "[slurm/stop] $2 still running: SIGKILL" >&2
                kill -9 "$pid" 2>/dev/null || true
            fi
        fi
    fi
    rm -f "$1"
}

stop /run/slurmd.pid slurmd
stop /run/slurmctld.pid slurmctld
stop /run/munge/munged.pid munged
