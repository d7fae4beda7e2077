#!/usr/bin/env bash
# `make demo EXECUTOR=slurm`: runs the demo's command (the rest of the arguments) with every reconstruction a job of a
# one-node Slurm cluster started for it on loopback and stopped after. The cluster's files are kept in
# DEMO_DIR/slurm-cluster with the demo's state.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: slurm-demo.sh COMMAND..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
export DEMO_DIR=${DEMO_DIR:-data/demo-$(date -u +%Y%m%d-%H%M%S)}
cluster="$DEMO_DIR/slurm-cluster"
mkdir -p "$cluster"
trap 'bash "$here/local-cluster.sh" stop "$cluster"' EXIT
bash "$here/local-cluster.sh" start "$cluster" "${SLURM_CPUS:-4}"
# shellcheck disable=SC1091
. "$cluster/cluster.env"
export Pipeline__Reconstruction__Executor=Slurm
export Pipeline__Reconstruction__Slurm__ConfigFile="$SLURM_CONF"
export Pipeline__Reconstruction__Slurm__Partition="$PARTITION"
export Pipeline__Reconstruction__Slurm__PollSeconds=1
export Pipeline__Reconstruction__Slurm__MemoryMegabytes=256
export Pipeline__Reconstruction__Slots="$CPUS"
"$@"
