#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, with accounting, for trying profiles/slurm.
#
#   sudo scripts/slurm-single-node.sh          # install (Debian/Ubuntu packages) and start
#   sudo scripts/slurm-single-node.sh stop     # stop every daemon it started
#
# Debian's slurm-wlm (22.05 on Debian 12), munge, slurmdbd and MariaDB, no systemd needed: each
# daemon is started by hand, so it also works in containers. One partition `debug` holds the
# node `localhost` with every CPU of the machine. Accounting is on because the executor plugin
# asks `sacct` for job states (without it the plugin waits forever, saying nothing). It needs
# root and touches /etc/slurm, /etc/munge, /var/lib/{slurm,mysql}: meant for CI machines,
# containers and throwaway VMs, not for a machine that already runs SLURM or MariaDB.
set -euo pipefail

log() { echo "slurm-single-node: $*" >&2; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2; shift 2
  for _ in $(seq "$((t * 4))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  log "timed out after ${t}s waiting for $what"; return 1
}

if [[ ${1:-start} == stop ]]; then
  pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x slurmdbd || true
  pkill -x mariadbd || true; pkill -x munged || true
  exit 0
fi
[[ $(id -u) == 0 ]] || { log "needs root (it installs packages and starts daemons)"; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  log "installing packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client slurmdbd \
    munge mariadb-server >/dev/null
fi

# munge: the authentication every SLURM daemon and client uses.
[[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
install -d -o munge -g munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
wait_for 10 munge bash -c 'munge -n | unmunge'

# MariaDB for slurmdbd (accounting).
install -d -o mysql -g mysql /run/mysqld
if ! pgrep -x mariadbd >/dev/null; then
  (mariadbd --user=mysql --innodb-buffer-pool-size=64M >/var/log/mariadbd.log 2>&1 &)
fi
wait_for 60 mariadb mysqladmin ping
mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
          CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

install -d -o slurm -g slurm /var/lib/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/slurm /var/log/slurm
cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf

# RealMemory must not exceed what slurmd measures, or the node comes up drained.
mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
cat >/etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$((mem * 9 / 10)) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

pgrep -x slurmdbd >/dev/null || slurmdbd
wait_for 30 slurmdbd sacctmgr -n list cluster
sacctmgr -n list cluster format=cluster | grep -qw ci || sacctmgr -i add cluster ci >/dev/null
# the executor plugin puts the rule and wildcards in the job comment; keep it in sacct
if pgrep -x slurmctld >/dev/null; then scontrol reconfigure; else slurmctld; fi
wait_for 30 slurmctld bash -c 'scontrol ping | grep -q UP'
pgrep -x slurmd >/dev/null || slurmd -N localhost   # the node name, not the host name
wait_for 30 "node idle" bash -c '[[ $(sinfo -h -o %T) == idle* ]]'
log "up: $(sinfo -h -o '%P %D %c CPUs %m MB %T')"
