#!/usr/bin/env bash
# Stop the cluster that slurm/local/start.sh brought up: cancel its jobs, then
# stop slurmd, slurmctld, slurmdbd, MariaDB and munged by their PID files.
# Idempotent; the state directory is kept (delete it to start from scratch).
set -uo pipefail

DIR="${DREAMERBENCH_SLURM_DIR:-/tmp/dreamerbench-slurm}"
export SLURM_CONF="$DIR/slurm.conf"

log() { echo "slurm/local/stop.sh: $*" >&2; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {  # stop NAME PIDFILE
  local name=$1 pidfile=$2 pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null
  rm -f "$pidfile"
}

if alive "$DIR/slurmctld.pid"; then
  # Jobs' processes belong to slurmstepd, which outlives slurmd: cancel them.
  jobs="$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')"
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do
      [ -z "$(squeue -h -t running,completing -o %A 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

stop slurmd "$DIR/slurmd.pid"
stop slurmctld "$DIR/slurmctld.pid"
stop slurmdbd "$DIR/slurmdbd.pid"
stop mariadbd "$DIR/mysql/mariadb.pid"
stop munged "$DIR/munge/munged.pid"
log "stopped"
