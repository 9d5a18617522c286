#!/usr/bin/env bash
# Stop the single-node Slurm of start.sh: cancel its jobs, then stop exactly the daemons whose pids
# start.sh recorded under $SLURM_CI_DIR/run (slurmd, slurmctld, slurmdbd, mariadbd, munged), by pid,
# never by name. A pid whose process is no longer the recorded daemon (reused pid) is left alone.
set -uo pipefail

DIR=${SLURM_CI_DIR:-/tmp/imbalance-study-slurm}
export SLURM_CONF=$DIR/etc/slurm.conf

alive() {  # name pid: is pid still the daemon `name` that start.sh started (its program, by argv[0])?
    local program
    program=$(tr '\0' '\n' < "/proc/$2/cmdline" 2>/dev/null) || return 1
    program=${program%%$'\n'*}
    [ -n "$program" ] && [ "$(basename "$program")" = "$1" ]
}

# Jobs first, so that no slurmstepd or job process outlives its slurmd.
if [ -e "$DIR/run/slurmctld.pid" ] && alive slurmctld "$(cat "$DIR/run/slurmctld.pid")"; then
    scancel --full --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
        [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.2
    done
fi

status=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    pidfile=$DIR/run/$name.pid
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if alive "$name" "$pid"; then
        kill -TERM "$pid"
        for _ in $(seq 100); do
            alive "$name" "$pid" || break
            sleep 0.1
        done
        if alive "$name" "$pid"; then
            echo "slurm stop: $name (pid $pid) ignored SIGTERM for 10 s; SIGKILL" >&2
            kill -KILL "$pid"
        fi
        echo "slurm stop: stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
done
# slurmd's link to its cached configs (configless mode), if it is ours.
if [ -L /run/slurm/conf ] && [ "$(readlink /run/slurm/conf)" = "$DIR/spool/d/conf-cache" ]; then
    rm -f /run/slurm/conf
fi
exit $status
