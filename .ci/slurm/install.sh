#!/usr/bin/env bash
# Install the Debian 12 packages of a single-node Slurm with accounting (slurmctld, slurmd,
# slurmdbd, the clients, munge, MariaDB), idempotently, without letting their init scripts start
# any daemon: .ci/slurm/start.sh starts exactly the daemons it needs, and .ci/slurm/stop.sh stops
# exactly those. Needs root (CI runs as root).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "slurm install: all packages present (${PACKAGES[*]})"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "slurm install: missing ${missing[*]}; run as root (or: apt-get install ${missing[*]})" >&2
    exit 1
fi

# A policy-rc.d that exits 101 tells invoke-rc.d not to start services during the install. Ours is
# temporary: an existing one is left alone (and then it decides), ours is removed on any exit.
policy=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    ours=1
fi
cleanup() { if [ "$ours" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "slurm install: apt-get install ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "slurm install: done"
