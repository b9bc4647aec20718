#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start.sh, by the pids recorded in its run
# folder (SLURM_TEST_RUN_DIR, default tests/slurm/run/), never by process name. A pid whose
# process is gone, or is some other program now (pid reuse), is only forgotten. munged is
# stopped only when start.sh started it. /etc/slurm/slurm.conf is left in place (it names
# this run folder, and start.sh rewrites it).
#
#   stop.sh               slurmd, slurmctld, then munged
#   stop.sh --slurm-only  slurmd and slurmctld
#
# Safe to run at any time, any number of times.
set -uo pipefail
if [ "$(id -u)" != 0 ]; then
  exec sudo -n env SLURM_TEST_RUN_DIR="${SLURM_TEST_RUN_DIR:-}" bash "$0" "$@"
fi
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${SLURM_TEST_RUN_DIR:-$HERE/run}

gone() { # gone PID: exited (a zombie not yet reaped counts as exited)
  [ ! -d "/proc/$1" ] || [ "$(sed 's/^.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
stop() { # stop NAME WORD: TERM the pid in RUN/NAME.pid if it runs WORD; KILL after 10 s
  local file=$RUN/$1.pid pid what
  [ -s "$file" ] || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  what="$(readlink "/proc/$pid/exe" 2>/dev/null) $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  if [[ $what != *"$2"* ]]; then
    rm -f "$file"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  # slurmctld saves its state on TERM and slurmd waits for KillWait: a few seconds
  for _ in $(seq 100); do gone "$pid" && break; sleep 0.1; done
  if ! gone "$pid"; then
    echo "slurm stop: $1 pid $pid still running after 10 s; sending KILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$file"
  echo "slurm stop: stopped $1 (pid $pid)"
}
stop slurmd slurmd
stop slurmctld slurmctld
[ "${1:-}" = --slurm-only ] || stop munged munged
rm -f "$RUN/started-by-pytest"
exit 0
