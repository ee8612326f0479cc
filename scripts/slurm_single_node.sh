#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine (Debian/Ubuntu, as root) to try the
# profiles/slurm workflow without a real cluster:
#
#   sudo scripts/slurm_single_node.sh          # install (apt) + configure + start; idempotent
#   sudo scripts/slurm_single_node.sh stop     # stop the daemons this script started
#
# It installs Debian's slurm-wlm and munge, writes /etc/slurm/slurm.conf for one node (this
# host: all its CPUs and ~90% of its memory) with two partitions, `cpu` (default) and `gpu`
# (the same node; the partition names profiles/slurm uses), no accounting database
# (the snakemake slurm executor then queries job status with `squeue`:
# `--slurm-status-command squeue`; MinJobAge=3600 keeps finished jobs visible to squeue for an
# hour, as long as a CI-sized study runs), and
# starts munged, slurmctld and slurmd. Prints `slurm: ready (<sinfo line>)` when a job can run.
# Environment: SLURM_CONF_DIR (default /etc/slurm), SLURM_NO_INSTALL=1 to skip apt-get.
set -euo pipefail

CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm

stop() {
  for pidfile in "$RUN/slurmd.pid" "$RUN/slurmctld.pid" /run/munge/munged.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  echo "slurm: stopped"
}

if [ "${1:-start}" = "stop" ]; then stop; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "slurm: run as root (sudo $0)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  [ "${SLURM_NO_INSTALL:-0}" = 1 ] && { echo "slurm: slurmctld/munged not installed" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi

if sinfo -h >/dev/null 2>&1 && [ "$(sinfo -h -o %T | head -1)" = idle ]; then
  echo "slurm: ready (already running: $(sinfo -h -o '%P %D %c %m %T' | tr '\n' ' '))"; exit 0
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" "$RUN" /run/munge /var/lib/munge /var/log/munge

# munge: one key shared by the daemons and the clients (a single host)
[ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
if ! munge -n >/dev/null 2>&1; then
  if id munge >/dev/null 2>&1; then su -s /bin/sh munge -c "munged --force" || munged --force
  else munged --force; fi
  sleep 1
fi
munge -n | unmunge >/dev/null

cat > "$CONF_DIR/slurm.conf" <<EOF
# written by scripts/slurm_single_node.sh: one node ($HOST), no accounting database
ClusterName=ipg-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF

[ -f "$RUN/slurmctld.pid" ] && kill "$(cat "$RUN/slurmctld.pid")" 2>/dev/null || true
[ -f "$RUN/slurmd.pid" ] && kill "$(cat "$RUN/slurmd.pid")" 2>/dev/null || true
sleep 1
slurmctld -c -f "$CONF_DIR/slurm.conf"   # -c: a clean state (no jobs from an earlier start)
slurmd -f "$CONF_DIR/slurm.conf"

for _ in $(seq 1 30); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  if [ "$state" = idle ]; then
    echo "slurm: ready ($(sinfo -h -o '%P %D %c %m %T' | tr '\n' ' '))"; exit 0
  fi
  [ "$state" = down ] || [ "$state" = "down*" ] && scontrol update nodename="$HOST" state=resume 2>/dev/null || true
  sleep 1
done
echo "slurm: node not idle after 30 s (state '${state:-none}'); see $LOGS/slurmd.log and $LOGS/slurmctld.log" >&2
exit 1
