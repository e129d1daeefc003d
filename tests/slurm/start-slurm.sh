#!/usr/bin/env bash
# Single-node Slurm for CI on Debian 12 (no systemd, no cgroups needed).
# Usage: ACCT=none|dbd FAKE_GPUS=0|1|2 bash start-slurm.sh
# Adapted from the project's shared recipe: a Slurm or munge left running by an earlier run is
# replaced, not fought over.
set -euo pipefail
ACCT=${ACCT:-none}
FAKE_GPUS=${FAKE_GPUS:-1}
D=${SLURM_CI_DIR:-/tmp/slurm-ci}
H=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))

pkgs="slurmctld slurmd slurm-client munge"
[ "$ACCT" = dbd ] && pkgs="$pkgs slurmdbd mariadb-server"
if ! command -v slurmctld >/dev/null || { [ "$ACCT" = dbd ] && ! command -v slurmdbd >/dev/null; }; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs >/dev/null
fi

rm -rf "$D"; mkdir -p "$D"/{state,spool,log}
getent hosts "$H" >/dev/null || echo "127.0.0.1 $H" >> /etc/hosts

# munge (the Debian package already created /etc/munge/munge.key)
[ -s /etc/munge/munge.key ] || { /usr/sbin/mungekey -c 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
mkdir -p /run/munge && chown munge:munge /run/munge
pkill -x slurmd 2>/dev/null || true
pkill -x slurmctld 2>/dev/null || true
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
munge -n | unmunge >/dev/null

GRES_NODE=""; GRES_TYPES=""
if [ "$FAKE_GPUS" -gt 0 ]; then
  GRES_TYPES="GresTypes=gpu"
  GRES_NODE="Gres=gpu:fake:$FAKE_GPUS"
  : > /etc/slurm/gres.conf
  # each fake GPU needs an existing device file; gpu GRES with Count= only drains the node
  devs=(/dev/null /dev/zero /dev/full /dev/urandom)
  for i in $(seq 0 $((FAKE_GPUS-1))); do
    echo "NodeName=$H Name=gpu Type=fake File=${devs[$i]}" >> /etc/slurm/gres.conf
  done
else
  rm -f /etc/slurm/gres.conf
fi

if [ "$ACCT" = dbd ]; then
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux"
else
  ACCT_LINES="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

cat > /etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=$H
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$ACCT_LINES
JobCompType=jobcomp/none
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
$GRES_TYPES
NodeName=$H CPUs=$CPUS RealMemory=$MEM $GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF

if [ "$ACCT" = dbd ]; then
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  (mariadbd --user=mysql --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid > "$D/log/mariadb.log" 2>&1 &)
  for _ in $(seq 60); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 1; done
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmpw
LogFile=$D/log/slurmdbd.log
PidFile=$D/slurmdbd.pid
EOF
  chmod 600 /etc/slurm/slurmdbd.conf
  slurmdbd
  for _ in $(seq 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
  sacctmgr -i add cluster ci >/dev/null 2>&1 || true
  sacctmgr -i add account ci Cluster=ci Description=ci Organization=ci >/dev/null 2>&1 || true
  sacctmgr -i add user "$(id -un)" Account=ci DefaultAccount=ci >/dev/null 2>&1 || true
fi

slurmctld
for _ in $(seq 30); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 1; done
slurmd
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -o "%P %N %c %m %G %T"
