#!/usr/bin/env bash
# Stop the rig's servers by the pids start_servers.sh recorded, never by name. A pid whose
# process is gone, or is no longer nginx / iipsrv (pid reuse), is only forgotten.
# Safe to run at any time, any number of times.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/ports.sh"                 # RIG_RUN_DIR: the same default as start_servers.sh
RUN=$RIG_RUN_DIR

gone() { # gone PID: the process has exited (a zombie waiting for its reaper counts as exited;
         # in containers whose init reaps slowly that wait can take seconds)
  [ ! -d "/proc/$1" ] || [ "$(sed 's/^.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
stop() { # stop NAME WORD SIGNAL
  local file=$RUN/$1.pid pid what
  [ -s "$file" ] || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  what="$(readlink "/proc/$pid/exe" 2>/dev/null) $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  if [[ $what != *"$2"* ]]; then
    echo "stop_servers: $1 pid $pid is not running; forgetting it"
    rm -f "$file"; return 0
  fi
  kill "-$3" "$pid" 2>/dev/null
  for _ in $(seq 50); do gone "$pid" && break; sleep 0.1; done
  if ! gone "$pid"; then
    echo "stop_servers: $1 pid $pid still running after 5 s; sending KILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$file"
  echo "stop_servers: stopped $1 (pid $pid)"
}
stop nginx nginx QUIT     # graceful: the master ends its workers
stop iipsrv iipsrv TERM
exit 0
