#!/usr/bin/env bash
# Install the Debian/Ubuntu packages of the single-node test cluster (tests/slurm/start.sh).
#
#   slurmctld     the controller (scheduler) daemon
#   slurmd        the compute-node daemon; the only node is this machine, on 127.0.0.1
#   slurm-client  sbatch, squeue, sinfo, scontrol, scancel: what Snakemake's SLURM executor
#                 plugin calls (sacct comes with it too, but needs slurmdbd to answer)
#   munge         the authentication daemon every SLURM message is signed with
#
# The Snakemake side (snakemake-executor-plugin-slurm) is a Python package: the `slurm`
# extra of pyproject.toml, installed by scripts/setup.sh --test.
#
# Idempotent: when every program below is present, apt is not called (FORCE=1 calls it
# anyway). The packages' postinst scripts try to start the services; where policy-rc.d or
# the lack of systemd prevents that (containers, CI VMs) nothing is lost: start.sh starts
# the daemons itself. Uses sudo only when not root.
set -euo pipefail

have() { # have PROGRAM: on PATH, or in an sbin folder that a non-root PATH may lack
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

needed=(slurmctld slurmd sbatch squeue sinfo scontrol scancel munged munge unmunge)
missing=()
for prog in "${needed[@]}"; do have "$prog" || missing+=("$prog"); done
if [ ${#missing[@]} = 0 ] && [ "${FORCE:-0}" != 1 ]; then
  echo "slurm install: all SLURM and munge programs present"
  exit 0
fi
echo "slurm install: missing: ${missing[*]:-none (FORCE=1)}"

command -v apt-get >/dev/null || {
  echo "slurm install: apt-get not found; install slurmctld, slurmd, slurm-client and munge by hand" >&2
  exit 1; }
SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "slurm install: not root and no sudo" >&2; exit 1; }
  SUDO=(sudo -n)
fi
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
echo "slurm install: installed slurmctld slurmd slurm-client munge ($(sinfo --version 2>/dev/null || echo '?'))"
