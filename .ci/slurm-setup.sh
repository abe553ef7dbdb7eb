#!/usr/bin/env bash
# Start a real one-node Slurm cluster on this machine (munged, slurmctld, slurmd) for the Slurm tests.
#
# Installs Debian's slurm-wlm and munge when missing, writes a minimal slurm.conf (one node with this
# machine's CPUs and most of its memory, no cgroups, no accounting database), starts the daemons as plain
# background processes (CI machines run no systemd) and waits until `sinfo` shows the node idle.
# Idempotent: when a working cluster already answers, it changes nothing and exits 0.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
STATE=/var/spool/slurm
LOGS=/var/log/slurm
RUN=/run/slurm
NODE=$(hostname -s)

log() { echo "slurm-setup: $*"; }

node_state() { sinfo --noheader --nodes="$NODE" --format=%T 2>/dev/null | head -n1 | tr -d '*~#' || true; }

cluster_ready() {
  command -v sinfo >/dev/null 2>&1 || return 1
  scontrol ping 2>/dev/null | grep -q "UP" || return 1
  case "$(node_state)" in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac
}

if cluster_ready; then
  log "Slurm already runs here (node $NODE is $(node_state)); nothing to do"
  exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  log "installing slurm-wlm and munge from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; }
fi

# --- munge: the authentication daemon every Slurm command talks through
if [ ! -s /etc/munge/munge.key ]; then
  log "creating a munge key"
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  rm -f /run/munge/munge.socket.2.lock
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || { log "munged does not answer"; exit 1; }
fi

# --- slurm.conf: one node with this machine's CPUs and 80 % of its memory
cpus=$(nproc --all)
mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS" "$RUN"
cat >"$CONF.new" <<EOF
# Written by vrbench .ci/slurm-setup.sh: a one-node test cluster.
ClusterName=vrbench
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Fast turnaround for tests: kill 5 s after SIGTERM, keep finished jobs visible to scontrol for 10 min.
KillWait=5
MinJobAge=600
SlurmdTimeout=60
InactiveLimit=0
NodeName=$NODE CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
running() { pgrep -x "$1" >/dev/null 2>&1; }

if ! cmp -s "$CONF.new" "$CONF"; then
  mv "$CONF.new" "$CONF"
  log "wrote $CONF (node $NODE: CPUs=$cpus RealMemory=$mem_mb)"
  # Daemons started from an older config (another hostname, other CPUs) must not keep it: restart ours.
  for daemon in slurmd slurmctld; do
    if [ -s "$RUN/$daemon.pid" ] && kill "$(cat "$RUN/$daemon.pid")" 2>/dev/null; then
      log "stopping $daemon to load the new config"
      for _ in $(seq 50); do running "$daemon" || break; sleep 0.1; done
    fi
  done
else
  rm -f "$CONF.new"
fi

if ! running slurmctld; then
  log "starting slurmctld"
  /usr/sbin/slurmctld
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || { log "slurmctld does not answer; see $LOGS/slurmctld.log"; tail -n 20 "$LOGS/slurmctld.log" || true; exit 1; }

if ! running slurmd; then
  log "starting slurmd"
  /usr/sbin/slurmd
fi

for _ in $(seq 150); do
  state=$(node_state)
  case "$state" in
    idle | mixed | allocated | completing) break ;;
    down | drained | draining | fail) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.2
done
if ! cluster_ready; then
  log "node $NODE did not become idle (state: '$(node_state)'); see $LOGS/slurmd.log"
  tail -n 20 "$LOGS/slurmd.log" || true
  exit 1
fi
log "Slurm is up: $(sinfo --noheader --format='%P %D node(s) %T %c CPUs')"
