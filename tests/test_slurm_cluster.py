"""The local cluster's Slurm config text, against stored expected output."""

import pytest

from dreamerbench.experiments.slurm_cluster import (
    LocalCluster,
    slurm_conf,
    slurmdbd_conf,
    write_atomic,
)

CLUSTER = LocalCluster(state_dir="/srv/slurm", cpus=2, memory_mb=19000)

EXPECTED_SLURM_CONF = """\
# Written by experiments/slurm_cluster.py for slurm/local/start.sh; do not edit.
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CryptoType=crypto/munge
AuthInfo=socket=/srv/slurm/munge/munge.socket,cred_expire=10
StateSaveLocation=/srv/slurm/state
SlurmdSpoolDir=/srv/slurm/spool
SlurmctldPidFile=/srv/slurm/slurmctld.pid
SlurmdPidFile=/srv/slurm/slurmd.pid
SlurmctldLogFile=/srv/slurm/log/slurmctld.log
SlurmdLogFile=/srv/slurm/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStoragePass=/srv/slurm/munge/munge.socket
JobCompType=jobcomp/filetxt
JobCompLoc=/srv/slurm/log/jobcomp.txt
JobRequeue=1
MinJobAge=300
InactiveLimit=0
KillWait=30
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=19000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""  # noqa: E501 (the config's own line)

EXPECTED_SLURMDBD_CONF = """\
# Written by experiments/slurm_cluster.py for slurm/local/start.sh; do not edit.
AuthType=auth/munge
AuthInfo=socket=/srv/slurm/munge/munge.socket
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=dreamerbench
StorageLoc=slurm_acct_db
PidFile=/srv/slurm/slurmdbd.pid
LogFile=/srv/slurm/log/slurmdbd.log
"""


def test_slurm_conf_text():
    assert slurm_conf(CLUSTER) == EXPECTED_SLURM_CONF


def test_slurmdbd_conf_text():
    assert slurmdbd_conf(CLUSTER) == EXPECTED_SLURMDBD_CONF


@pytest.mark.parametrize("state_dir", ["/srv/slurm\nSlurmUser=evil", "/srv/my slurm", "/srv/$(x)"])
def test_values_cannot_inject_lines(state_dir):
    with pytest.raises(ValueError, match="state_dir"):
        LocalCluster(state_dir=state_dir, cpus=2, memory_mb=1000)


def test_write_atomic_sets_mode_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "slurmdbd.conf"
    write_atomic(target, "a\n", mode=0o600)
    write_atomic(target, "b\n", mode=0o600)
    assert target.read_text() == "b\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["slurmdbd.conf"]
