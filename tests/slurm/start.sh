#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for the tests: munged, slurmctld and slurmd,
# all on 127.0.0.1, no systemd and no cgroups needed. Stop it with tests/slurm/stop.sh.
#
# Needs root (sudo -n is used otherwise): the daemons run as root and the configuration goes
# to /etc/slurm/slurm.conf, the file sbatch, squeue, sinfo and Snakemake's SLURM plugin read
# without any environment variable. A slurm.conf that this script did not write is never
# overwritten (the first line marks ours); SLURM_TEST_OVERWRITE_CONF=1 overrides that.
#
# Runtime files (state, spool, logs, pid files) live in SLURM_TEST_RUN_DIR, by default
# tests/slurm/run/ (git-ignored). Safe to re-run: when the daemons recorded there are alive
# and the node answers, nothing is started again, and jobs of another test session keep
# running ("already running" is printed). Exit status 0 = the node is up.
#
# Settings that matter (measured with Debian's slurm-wlm 22.05 and Snakemake's SLURM
# executor plugin 2.8):
#   AccountingStorageType=none  no slurmdbd, so `sacct` cannot answer; Snakemake must be run
#                               with --slurm-status-command squeue (profiles/slurm does)
#   MinJobAge=600               squeue keeps showing a finished job for 10 minutes; the
#                               plugin reads final states from squeue and falls back to sacct
#                               when MinJobAge < 3 x its first status delay
#   proctrack/linuxproc, task/none  job processes tracked without cgroups
#   CR_Core_Memory, DefMemPerCPU    cores and memory are both consumable, so jobs asking
#                               for more than the node has stay PENDING (hence a cores cap
#                               on group jobs in the profile)
#   sched_interval=1            the scheduler looks at the queue every second
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "slurm start: needs root (or sudo)" >&2; exit 1; }
  exec sudo -n env SLURM_TEST_RUN_DIR="${SLURM_TEST_RUN_DIR:-}" \
    SLURM_TEST_OVERWRITE_CONF="${SLURM_TEST_OVERWRITE_CONF:-0}" \
    SLURMCTLD_PORT="${SLURMCTLD_PORT:-6817}" SLURMD_PORT="${SLURMD_PORT:-6818}" bash "$0" "$@"
fi
export PATH=$PATH:/usr/sbin:/sbin
t0=$(date +%s.%N)
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${SLURM_TEST_RUN_DIR:-$HERE/run}
CONF=/etc/slurm/slurm.conf
MARK="# dezoom-steps test cluster (tests/slurm/start.sh)"
CTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
NODE=$(hostname -s)

say() { echo "slurm start: $*"; }
die() { echo "slurm start: $*" >&2; exit 1; }
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
alive() { # alive PIDFILE WORD: the recorded pid runs a program whose path or command has WORD
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -d "/proc/$pid" ] || return 1
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null) $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$2"* ]]
}
node_idle() { sinfo -h -o '%t' 2>/dev/null | grep -qx idle; }
# up: answering and able to take jobs (idle, or busy with jobs: mix, alloc, comp);
# a trailing * means slurmctld cannot reach slurmd
node_up() { sinfo -h -o '%t' 2>/dev/null | grep -qxE 'idle|mix|alloc|comp'; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
auth_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

for prog in slurmctld slurmd sinfo sbatch squeue scontrol munged munge unmunge; do
  command -v "$prog" >/dev/null || die "$prog not found; run tests/slurm/install.sh"
done
case $RUN in *[[:space:]]*) die "the run folder '$RUN' contains spaces, which slurm.conf cannot hold" ;; esac
mkdir -p "$RUN/state" "$RUN/spool" "$RUN/log"

if alive "$RUN/slurmctld.pid" slurmctld && alive "$RUN/slurmd.pid" slurmd && node_up; then
  say "already running (pids $(cat "$RUN/slurmctld.pid") and $(cat "$RUN/slurmd.pid"))"
  exit 0
fi
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
  if listening "$port" && ! alive "$RUN/slurmctld.pid" slurmctld && ! alive "$RUN/slurmd.pid" slurmd; then
    die "port $port on 127.0.0.1 is in use by a program not started by tests/slurm (another SLURM?)"
  fi
done
if [ -e "$CONF" ] && [ "$(head -n 1 "$CONF")" != "$MARK" ] && [ "${SLURM_TEST_OVERWRITE_CONF:-0}" != 1 ]; then
  die "$CONF exists and was not written by this script; not touching it (SLURM_TEST_OVERWRITE_CONF=1 overrides)"
fi

# ---- munge: one shared key; Debian's postinst normally creates it ---------------------
if ! auth_ok; then
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- munged          # forks; writes /run/munge/munged.pid
  for _ in $(seq 50); do auth_ok && break; sleep 0.1; done
  auth_ok || die "munged does not answer (see /var/log/munge/munged.log)"
  # recorded here only because this script started it: stop.sh leaves any other munged alone
  cp /run/munge/munged.pid "$RUN/munged.pid"
fi

# ---- configuration ---------------------------------------------------------------------
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.85 }' /proc/meminfo)
mkdir -p /etc/slurm
tmp=$(mktemp /etc/slurm/.slurm.conf.XXXXXX)
cat >"$tmp" <<CONF
$MARK
# One node (this machine) on 127.0.0.1; runtime files in $RUN.
ClusterName=dezoomtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
StateSaveLocation=$RUN/state
SlurmdSpoolDir=$RUN/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$RUN/log/slurmctld.log
SlurmdLogFile=$RUN/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
chmod 0644 "$tmp"
mv -f "$tmp" "$CONF"

# ---- daemons ---------------------------------------------------------------------------
# A daemon of ours that survived a half-finished earlier start is stopped first, by pid.
bash "$HERE/stop.sh" --slurm-only >/dev/null
rm -f "$RUN/started-by-pytest"      # tests/slurm_fixture.py marks the clusters it started
# -c: start from an empty state (no jobs of an earlier session); both daemons fork and
# write their pid files into $RUN.
slurmctld -c
slurmd -N "$NODE"
for _ in $(seq 150); do node_idle && break; sleep 0.1; done
if ! node_idle; then
  sinfo 2>&1 || true
  tail -n 15 "$RUN/log/slurmctld.log" "$RUN/log/slurmd.log" 2>&1 || true
  die "the node is not idle after 15 s (logs in $RUN/log)"
fi
say "up in $(elapsed) s: node $NODE, $cpus CPUs, $mem_mb MB, partition debug"
