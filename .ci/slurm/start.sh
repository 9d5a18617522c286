#!/usr/bin/env bash
# Start a single-node Slurm 22.05 on this machine, with accounting, for the cluster tests:
#   munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd, each in the foreground of its own
#   background process, its pid written to $SLURM_CI_DIR/run/<daemon>.pid (stop.sh kills exactly
#   those pids, never a daemon found by name).
# Everything (configs, sockets, databases, logs) lives under $SLURM_CI_DIR; nothing is written to
# /etc, and every port is a non-default one, so a Slurm or MariaDB already on the machine is left
# alone. Clients find this cluster through SLURM_CONF=$SLURM_CI_DIR/etc/slurm.conf.
#
# The node offers one fake GPU (gres gpu:fake:1, File=/dev/null): enough for Slurm to schedule
# `--gpus=1` and set CUDA_VISIBLE_DEVICES, while the code still sees no CUDA and runs on the CPU.
# Partitions: `cpu` (Default=YES: where sbatch without -p puts a job, as on most clusters) and `gpu`,
# both on this node. The profile's test run without IMBALANCE_STUDY_* variables relies on the default.
# An account `study` holds the user who runs this script.
#
# Needs root and the packages of .ci/slurm/install.sh. Takes about 15 s here.
set -euo pipefail

DIR=${SLURM_CI_DIR:-/tmp/imbalance-study-slurm}
PORT_BASE=${SLURM_CI_PORT_BASE:-16810}  # slurmctld +7, slurmd +8, slurmdbd +9, MariaDB +6
CTLD_PORT=$((PORT_BASE + 7))
SLURMD_PORT=$((PORT_BASE + 8))
DBD_PORT=$((PORT_BASE + 9))
DB_PORT=$((PORT_BASE + 6))
CLUSTER=imbalance
USER_NAME=$(id -un)

log() { echo "slurm start: $*"; }
fail() {
    echo "slurm start: $*" >&2
    for file in "$DIR"/log/*.log; do
        [ -e "$file" ] && { echo "--- $file (tail)" >&2; tail -n 20 "$file" >&2; }
    done
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    echo "slurm start: needs root (slurmd runs jobs as their users)" >&2
    exit 1
fi
for binary in munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch sacct sacctmgr; do
    command -v "$binary" >/dev/null || { echo "slurm start: $binary missing; run .ci/slurm/install.sh" >&2; exit 1; }
done
for pidfile in "$DIR"/run/*.pid; do
    if [ -e "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "slurm start: $pidfile is alive; run .ci/slurm/stop.sh first" >&2
        exit 1
    fi
done

# $DIR is wiped: only a folder this script made before (it has the marker), or an empty one.
MARKER=.imbalance-study-slurm
if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ] && [ ! -e "$DIR/$MARKER" ]; then
    echo "slurm start: $DIR is not empty and was not made by this script; set SLURM_CI_DIR elsewhere" >&2
    exit 1
fi
rm -rf "$DIR"
mkdir -p "$DIR"/{etc,run,log,munge,mysql,spool/ctld,spool/d,tmp}
touch "$DIR/$MARKER"
chmod 755 "$DIR"

started() {  # name pid: record the pid of a daemon this script started
    echo "$2" > "$DIR/run/$1.pid"
}

wait_for() {  # seconds description command...: poll until the command succeeds
    local seconds=$1 description=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "timed out after ${seconds}s waiting for $description"
        sleep 0.2
    done
}

# --- munge: authentication for every Slurm message -------------------------------------------------
# Slurm's clients reach munged only on its default socket (the slurmdbd connection ignores
# AuthInfo=socket=), so ours listens there, with its own key. A munged that already answers there
# (a machine with Slurm installed) is used as it is, and left running.
MUNGE_SOCKET=/run/munge/munge.socket.2
if [ -S "$MUNGE_SOCKET" ] && munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; then
    log "using the munged already running on $MUNGE_SOCKET"
else
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
    mkdir -p /run/munge
    chmod 755 /run/munge
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munged --foreground --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$DIR/run/munged.pidfile" --seed-file="$DIR/munge/munged.seed" \
        --log-file="$DIR/log/munged.log" </dev/null >>"$DIR/log/munged.log" 2>&1 &
    started munged $!
    wait_for 20 munged test -S "$MUNGE_SOCKET"
    log "munged up (pid $(cat "$DIR/run/munged.pid"))"
fi

# --- MariaDB: the accounting database, own datadir, loopback only -----------------------------------
DB_SOCKET=$DIR/run/mysqld.sock
mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --skip-test-db \
    --auth-root-authentication-method=socket --innodb-log-file-size=8M >"$DIR/log/mariadb-install.log" 2>&1 \
    || fail "mariadb-install-db failed"
mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DB_SOCKET" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --user=root --skip-name-resolve --pid-file="$DIR/run/mariadbd.pidfile" \
    --log-error="$DIR/log/mariadbd.log" --tmpdir="$DIR/tmp" --innodb-buffer-pool-size=64M --innodb-log-file-size=8M \
    --skip-log-bin </dev/null >>"$DIR/log/mariadbd.log" 2>&1 &
started mariadbd $!
wait_for 60 mariadbd mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping
DB_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mariadb --no-defaults --socket="$DB_SOCKET" -u root <<SQL || fail "could not create the slurm database user"
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
log "mariadbd up (pid $(cat "$DIR/run/mariadbd.pid"), port $DB_PORT)"

# --- configs --------------------------------------------------------------------------------------
HOST=$(hostname -s)
# The node's real socket/core layout and memory, so that slurmd does not drain it.
read -r CPUS BOARDS SOCKETS CORES THREADS MEMORY < <(slurmd -C | head -n 1 | tr ' ' '\n' | awk -F= '
    $1 == "CPUs" {c = $2} $1 == "Boards" {b = $2} $1 == "SocketsPerBoard" {s = $2}
    $1 == "CoresPerSocket" {k = $2} $1 == "ThreadsPerCore" {t = $2} $1 == "RealMemory" {m = $2}
    END {print c, b, s, k, t, m}')
[ -n "$MEMORY" ] || fail "could not read the node layout from slurmd -C"

cat > "$DIR/etc/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pidfile
SlurmdPidFile=$DIR/run/slurmd.pidfile
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Configless: slurmd fetches these files from slurmctld and links them at /run/slurm/conf, where
# Slurm's commands look when SLURM_CONF is unset (the plugin's job step unsets it for its srun).
SlurmctldParameters=enable_configless
KillWait=5
MinJobAge=300
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEMORY Gres=gpu:fake:1 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
CONF
# A fake GPU: without File= the node drains; AutoDetect=off keeps slurmd from looking for NVML.
cat > "$DIR/etc/gres.conf" <<CONF
AutoDetect=off
NodeName=$HOST Name=gpu Type=fake File=/dev/null
CONF
cat > "$DIR/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pidfile
LogFile=$DIR/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
CONF
chmod 600 "$DIR/etc/slurmdbd.conf"
export SLURM_CONF=$DIR/etc/slurm.conf

# --- slurmdbd, then the cluster and an account in it ------------------------------------------------
slurmdbd -D </dev/null >>"$DIR/log/slurmdbd.log" 2>&1 &
started slurmdbd $!
wait_for 60 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -i add account study Description="imbalance study tests" Organization=ci >/dev/null
sacctmgr -i add user "$USER_NAME" account=study >/dev/null
log "slurmdbd up (pid $(cat "$DIR/run/slurmdbd.pid"), port $DBD_PORT)"

# --- slurmctld and slurmd -------------------------------------------------------------------------
slurmctld -D -i </dev/null >>"$DIR/log/slurmctld.log" 2>&1 &
started slurmctld $!
wait_for 60 slurmctld scontrol ping
slurmd -D --conf-server "127.0.0.1:$CTLD_PORT" </dev/null >>"$DIR/log/slurmd.log" 2>&1 &
started slurmd $!
node_idle() { [ "$(sinfo -h -n "$HOST" -o %t | head -n 1)" = idle ]; }
wait_for 60 "node $HOST to be idle" node_idle
log "slurmctld (pid $(cat "$DIR/run/slurmctld.pid"), port $CTLD_PORT) and slurmd (pid $(cat "$DIR/run/slurmd.pid")) up"

# --- smoke test: a GPU job runs and reaches the accounting database ---------------------------------
[ "$(sinfo -h -o %P | grep -F '*')" = 'cpu*' ] || fail "partition cpu is not the default (sinfo: $(sinfo -h -o %P | tr '\n' ' '))"
job=$(sbatch --parsable -p gpu -A study --gpus=1 -t 1 -o "$DIR/log/smoke-%j.out" \
    --wrap 'echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"')
job_done() { [ "$(sacct -n -X -P -j "$job" -o State | head -n 1)" = COMPLETED ]; }
wait_for 60 "smoke job $job to be COMPLETED in sacct" job_done
grep -q "CUDA_VISIBLE_DEVICES=0" "$DIR/log/smoke-$job.out" || fail "the GPU job saw no CUDA_VISIBLE_DEVICES=0"
log "ready: export SLURM_CONF=$SLURM_CONF (partitions cpu (default), gpu; account study; 1 fake GPU)"
