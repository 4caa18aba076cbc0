#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster on 127.0.0.1, as root, in a private
# directory: munged, MariaDB + slurmdbd (so sacct works), slurmctld, slurmd.
# Idempotent: if the cluster already answers, it is left as it is.
# Installs the Debian packages if they are missing.
#
#   bash slurm/local/start.sh          # then: export SLURM_CONF=/tmp/dreamerbench-slurm/slurm.conf
#   DREAMERBENCH_SLURM_DIR=/some/dir bash slurm/local/start.sh
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="${DREAMERBENCH_SLURM_DIR:-/tmp/dreamerbench-slurm}"
export SLURM_CONF="$DIR/slurm.conf"
PYTHON="${PYTHON:-python3}"

log() { echo "slurm/local/start.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the daemons run as root, munged as user munge)"

packages=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge \
            slurmdbd:slurmdbd mariadbd:mariadb-server; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || packages+=("${pair#*:}")
done
if [ "${#packages[@]}" -gt 0 ]; then
  log "installing ${packages[*]}"
  # A fresh machine may have no package lists yet.
  apt-get update -q >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" >&2 \
    || die "apt-get install ${packages[*]} failed"
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo -h -n localhost -o %T 2>/dev/null | head -n1; }

if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && [ -n "$(node_state)" ]; then
  log "already up ($(node_state)); SLURM_CONF=$SLURM_CONF"
  echo "export SLURM_CONF=$SLURM_CONF"
  exit 0
fi

mkdir -p "$DIR"/{state,spool,log,munge,mysql}
chmod 755 "$DIR"
(cd "$REPO" && "$PYTHON" -m dreamerbench.experiments.slurm_cluster write "$DIR") >/dev/null

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what did not come up within ${limit}s (logs: $DIR/log)"
    sleep 0.2
  done
}

# munge: a private key and socket, so nothing outside this directory is used.
# munged insists that clients can reach its socket: the directory is 711.
chown munge:munge "$DIR/munge"
chmod 711 "$DIR/munge"
if [ ! -f "$DIR/munge/munge.key" ]; then
  head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
fi
chown munge:munge "$DIR/munge/munge.key"
chmod 400 "$DIR/munge/munge.key"
if ! alive "$DIR/munge/munged.pid"; then
  rm -f "$DIR/munge/munge.socket"
  runuser -u munge -- munged --socket="$DIR/munge/munge.socket" \
    --key-file="$DIR/munge/munge.key" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" \
    || die "munged failed (log: $DIR/munge/munged.log)"
fi
wait_for 10 munged test -S "$DIR/munge/munge.socket"

# MariaDB for slurmdbd, on its own port, socket and data directory.
chown mysql:mysql "$DIR/mysql"
if [ ! -d "$DIR/mysql/data/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$DIR/mysql/data" --skip-test-db \
    --auth-root-authentication-method=socket > "$DIR/log/mariadb-install.log" 2>&1 \
    || die "mariadb-install-db failed (log: $DIR/log/mariadb-install.log)"
fi
if ! alive "$DIR/mysql/mariadb.pid"; then
  mariadbd --user=mysql --datadir="$DIR/mysql/data" --socket="$DIR/mysql/mariadb.sock" \
    --port=3307 --bind-address=127.0.0.1 --pid-file="$DIR/mysql/mariadb.pid" \
    --innodb-buffer-pool-size=64M --log-error="$DIR/log/mariadb.log" >/dev/null 2>&1 &
  wait_for 30 MariaDB mariadb --socket="$DIR/mysql/mariadb.sock" -u root -e "SELECT 1"
fi
PASS="$(sed -n 's/^StoragePass=//p' "$DIR/slurmdbd.conf")"
mariadb --socket="$DIR/mysql/mariadb.sock" -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

# slurmdbd finds slurmdbd.conf next to $SLURM_CONF.
if ! alive "$DIR/slurmdbd.pid"; then
  slurmdbd || die "slurmdbd failed (log: $DIR/log/slurmdbd.log)"
fi
wait_for 30 slurmdbd sacctmgr -n list cluster
if ! sacctmgr -n -P list cluster format=cluster | grep -qx local; then
  sacctmgr -i add cluster local >/dev/null
fi

if ! alive "$DIR/slurmctld.pid"; then
  slurmctld -f "$SLURM_CONF" || die "slurmctld failed (log: $DIR/log/slurmctld.log)"
fi
wait_for 20 slurmctld scontrol ping
if ! alive "$DIR/slurmd.pid"; then
  slurmd -f "$SLURM_CONF" -N localhost || die "slurmd failed (log: $DIR/log/slurmd.log)"
fi

ready() {
  case "$(node_state)" in
    idle*|mixed*|allocated*) return 0 ;;
    down*|drain*) scontrol update nodename=localhost state=resume >/dev/null 2>&1; return 1 ;;
    *) return 1 ;;
  esac
}
wait_for 30 "the node" ready
log "up; SLURM_CONF=$SLURM_CONF"
echo "export SLURM_CONF=$SLURM_CONF"
