"""Config text of the single-node Slurm cluster used for development and tests.

``slurm/local/start.sh`` calls ``python3 -m dreamerbench.experiments.slurm_cluster write DIR``
to render ``slurm.conf`` and ``slurmdbd.conf`` into its private state
directory. The text comes from pure functions (tested against expected output
in ``tests/test_slurm_cluster.py``); values that reach a config line are
checked so that nothing can inject a second line.

Facts behind the settings (measured on this machine class, see
the shared notes, ``environment-facts.md``): the hostname is not
``localhost``, so the node is named ``localhost`` and slurmd is started with
``-N localhost``; ``AuthInfo=cred_expire=10`` cuts the wait before a requeued
job can start again from about 150 s to about 28 s.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = "/tmp/dreamerbench-slurm"
"""Private state directory of the local cluster (``DREAMERBENCH_SLURM_DIR`` overrides)."""

_SAFE = re.compile(r"^[A-Za-z0-9_./:@+,=-]+$")


@dataclass(frozen=True)
class LocalCluster:
    """What varies between machines: the directory, the ports and the node's size."""

    state_dir: str
    cpus: int
    memory_mb: int
    cluster_name: str = "local"
    slurmctld_port: int = 6817
    slurmd_port: int = 6818
    slurmdbd_port: int = 6819
    mysql_port: int = 3307
    db_password: str = "dreamerbench"

    def __post_init__(self) -> None:
        for name in ("state_dir", "cluster_name", "db_password"):
            value = getattr(self, name)
            if not _SAFE.match(value):
                raise ValueError(f"{name}={value!r} may only use letters, digits and _./:@+,=-")
        if self.cpus < 1 or self.memory_mb < 256:
            raise ValueError(f"cpus={self.cpus} memory_mb={self.memory_mb}: too small for a node")

    @property
    def munge_socket(self) -> str:
        return f"{self.state_dir}/munge/munge.socket"

    @property
    def conf_path(self) -> str:
        return f"{self.state_dir}/slurm.conf"


def default_state_dir() -> str:
    return os.environ.get("DREAMERBENCH_SLURM_DIR", DEFAULT_DIR)


def slurm_conf(cluster: LocalCluster) -> str:
    """The text of slurm.conf for one node named ``localhost`` on 127.0.0.1."""
    d = cluster.state_dir
    lines = [
        "# Written by experiments/slurm_cluster.py for slurm/local/start.sh; do not edit.",
        f"ClusterName={cluster.cluster_name}",
        "SlurmctldHost=localhost",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"SlurmctldPort={cluster.slurmctld_port}",
        f"SlurmdPort={cluster.slurmd_port}",
        "AuthType=auth/munge",
        "CryptoType=crypto/munge",
        # A requeued job waits for its old credential to expire (default 120 s).
        f"AuthInfo=socket={cluster.munge_socket},cred_expire=10",
        f"StateSaveLocation={d}/state",
        f"SlurmdSpoolDir={d}/spool",
        f"SlurmctldPidFile={d}/slurmctld.pid",
        f"SlurmdPidFile={d}/slurmd.pid",
        f"SlurmctldLogFile={d}/log/slurmctld.log",
        f"SlurmdLogFile={d}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/linux",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "ReturnToService=2",
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=localhost",
        f"AccountingStoragePort={cluster.slurmdbd_port}",
        # With slurmdbd and munge, this names the munge socket for dbd connections.
        f"AccountingStoragePass={cluster.munge_socket}",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={d}/log/jobcomp.txt",
        "JobRequeue=1",
        "MinJobAge=300",
        "InactiveLimit=0",
        "KillWait=30",
        "Waittime=0",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cluster.cpus} Boards=1 SocketsPerBoard=1 "
        f"CoresPerSocket={cluster.cpus} ThreadsPerCore=1 RealMemory={cluster.memory_mb} "
        "State=UNKNOWN",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
    ]
    return "\n".join(lines) + "\n"


def slurmdbd_conf(cluster: LocalCluster) -> str:
    """The text of slurmdbd.conf (MariaDB on 127.0.0.1:mysql_port); must be mode 600."""
    d = cluster.state_dir
    lines = [
        "# Written by experiments/slurm_cluster.py for slurm/local/start.sh; do not edit.",
        "AuthType=auth/munge",
        f"AuthInfo=socket={cluster.munge_socket}",
        "DbdHost=localhost",
        f"DbdPort={cluster.slurmdbd_port}",
        "SlurmUser=root",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={cluster.mysql_port}",
        "StorageUser=slurm",
        f"StoragePass={cluster.db_password}",
        "StorageLoc=slurm_acct_db",
        f"PidFile={d}/slurmdbd.pid",
        f"LogFile={d}/log/slurmdbd.log",
    ]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal not found in /proc/meminfo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the local cluster's Slurm configs.")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write slurm.conf and slurmdbd.conf into DIR")
    write.add_argument("state_dir", nargs="?", default=None)
    args = parser.parse_args(argv)
    state_dir = os.path.abspath(args.state_dir or default_state_dir())
    # Leave memory for the controller, MariaDB and the test process itself.
    cluster = LocalCluster(
        state_dir=state_dir, cpus=os.cpu_count() or 1, memory_mb=max(256, int(_memory_mb() * 0.8))
    )
    write_atomic(Path(state_dir) / "slurm.conf", slurm_conf(cluster))
    write_atomic(Path(state_dir) / "slurmdbd.conf", slurmdbd_conf(cluster), mode=0o600)
    print(cluster.conf_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
