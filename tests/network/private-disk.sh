#!/usr/bin/env bash
# Runs a command with a folder of its host's own in place of the shared data folder, in a mount namespace of its own
# (started by `unshare --mount --propagation private`): what the command writes under DATA lands in HOST_DATA and no
# other host sees it; what other hosts wrote there is hidden from it.
#   private-disk.sh HOST_DATA DATA COMMAND [ARGUMENT...]
set -euo pipefail
host_data=${1:?usage: private-disk.sh HOST_DATA DATA COMMAND [ARGUMENT...]}
data=${2:?usage: private-disk.sh HOST_DATA DATA COMMAND [ARGUMENT...]}
shift 2
[ "$#" -gt 0 ] || { echo "private-disk.sh: no command" >&2; exit 2; }
mount --bind "$host_data" "$data"
exec "$@"
