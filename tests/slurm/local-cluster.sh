#!/usr/bin/env bash
# A one-node Slurm cluster on loopback for the tests, the benchmark and `make demo EXECUTOR=slurm`: its own munged,
# slurmctld and slurmd, every file of theirs in DIR, on free ports. Installs slurm and munge from Debian when missing.
#   local-cluster.sh start DIR [CPUS]  starts it and writes DIR/cluster.env (SLURM_CONF, PARTITION, CPUS, the daemons'
#                                      pids); CPUS (default 8) is how many one-CPU jobs run at once on this one node,
#                                      whatever the machine has: the jobs of the tests mostly wait. Started again in the
#                                      same DIR it keeps its ports, its job ids and its queue.
#   local-cluster.sh stop DIR          stops it (idempotent)
#   local-cluster.sh stop-node DIR     stops slurmd alone, as a node that stops answering; start-node DIR starts it
#                                      again (nothing when it runs)
#   local-cluster.sh start-node DIR
set -euo pipefail

command=${1:?usage: local-cluster.sh start|stop|stop-node|start-node DIR [CPUS]}
dir=${2:?usage: local-cluster.sh start|stop|stop-node|start-node DIR [CPUS]}
cpus=${3:-8}
here=$(cd "$(dirname "$0")" && pwd)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {
  local what=$1 pid=$2 log=$3
  shift 3
  local deadline=$((SECONDS + 60))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$what did not start; its log:" >&2
      tail -n 30 "$log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

start_node() {
  setsid /usr/sbin/slurmd -D -N localhost -f "$dir/slurm.conf" -L "$dir/slurmd.log" </dev/null >"$dir/slurmd.out" 2>&1 &
  echo $! > "$dir/slurmd.pid"
  # The node is up once the controller sees it idle or working.
  wait_for slurmd "$(cat "$dir/slurmd.pid")" "$dir/slurmd.log" \
    bash -c "SLURM_CONF='$dir/slurm.conf' sinfo -h -n localhost -o %t | grep -Eq '^(idle|mix|alloc)'"
}

stop_pid() {
  local file=$1
  if [ -f "$file" ]; then
    local pid
    pid=$(cat "$file")
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
  fi
}

case "$command" in
  start)
    bash "$here/../ensure-debian-package.sh" /usr/sbin/munged munge
    bash "$here/../ensure-debian-package.sh" /usr/sbin/slurmctld slurmctld
    bash "$here/../ensure-debian-package.sh" /usr/sbin/slurmd slurmd
    bash "$here/../ensure-debian-package.sh" /usr/bin/sbatch slurm-client
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/ports" ]; then
      read -r controller_port node_port < "$dir/ports"
    else
      controller_port=$(free_port)
      node_port=$(free_port)
      echo "$controller_port $node_port" > "$dir/ports"
    fi
    if [ ! -f "$dir/munge/munge.key" ]; then
      /usr/sbin/mungekey --create --keyfile="$dir/munge/munge.key" >/dev/null
    fi
    chmod 0700 "$dir/munge"
    chmod 0600 "$dir/munge/munge.key"
    user=$(id -un)
    cat > "$dir/slurm.conf" <<CONFIG
ClusterName=pipeline-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$controller_port
SlurmdPort=$node_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pidfile
SlurmdPidFile=$dir/slurmd.pidfile
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobs-ended.txt
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
# Ended jobs stay in the controller's memory (squeue --states=all, scontrol show job) for ten minutes.
MinJobAge=600
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
# The node has as many CPUs as the cluster is told, not as the machine has.
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$((cpus * 1024)) State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONFIG
    setsid /usr/sbin/munged --foreground --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
      --pid-file="$dir/munge/munged.pidfile" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
      </dev/null >"$dir/munged.out" 2>&1 &
    echo $! > "$dir/munged.pid"
    wait_for munged "$(cat "$dir/munged.pid")" "$dir/munge/munged.log" test -S "$dir/munge/munge.socket"
    setsid /usr/sbin/slurmctld -D -f "$dir/slurm.conf" </dev/null >"$dir/slurmctld.out" 2>&1 &
    echo $! > "$dir/slurmctld.pid"
    wait_for slurmctld "$(cat "$dir/slurmctld.pid")" "$dir/slurmctld.log" env SLURM_CONF="$dir/slurm.conf" scontrol ping
    start_node
    cat > "$dir/cluster.env" <<ENV
SLURM_CONF=$dir/slurm.conf
PARTITION=test
CPUS=$cpus
ENV
    echo "Slurm is running one node with $cpus CPUs on 127.0.0.1:$controller_port (SLURM_CONF=$dir/slurm.conf)." >&2
    ;;
  stop)
    dir=$(cd "$dir" 2>/dev/null && pwd) || exit 0
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munged.pid"
    rm -f "$dir/cluster.env"
    ;;
  stop-node)
    stop_pid "$dir/slurmd.pid"
    ;;
  start-node)
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/slurmd.pid" ] && kill -0 "$(cat "$dir/slurmd.pid")" 2>/dev/null; then
      exit 0
    fi
    start_node
    ;;
  *)
    echo "usage: local-cluster.sh start|stop|stop-node|start-node DIR [CPUS]" >&2
    exit 2
    ;;
esac
