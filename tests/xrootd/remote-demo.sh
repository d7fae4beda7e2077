#!/usr/bin/env bash
# `make demo STORAGE=remote`: the demo with its areas on a local XRootD server, started for it and stopped after:
# the archive over root:// on the server's nearline path (tape behind XRootD's file residency manager: raw files are
# recalled, merged files migrated), the reconstruction outputs over root:// on a disk path, cache, output and logs over
# HTTP/WebDAV. Scratch stays a folder (the job folders).
# The server's files and its tape library are kept in DEMO_DIR/storage-server with the demo's state.
set -euo pipefail
host_dll=${1:?usage: remote-demo.sh HOST_DLL}
here=$(cd "$(dirname "$0")" && pwd)
export DEMO_DIR=${DEMO_DIR:-data/demo-$(date -u +%Y%m%d-%H%M%S)}
server="$DEMO_DIR/storage-server"
mkdir -p "$server"
trap 'bash "$here/local-server.sh" stop "$server"' EXIT
bash "$here/local-server.sh" start "$server" --tape
# shellcheck disable=SC1091
. "$server/server.env"
export Pipeline__Areas__archive="$TAPE_URL/archive/"
export Pipeline__Archives__archive__Kind=Nearline
export Pipeline__Archives__archive__Nearline__PollSeconds=0.5
export Pipeline__Archives__archive__Nearline__RecallFloorSeconds=120
export Pipeline__Archives__archive__Nearline__RecallSecondsPerFile=5
export Pipeline__Areas__unmerged="$ROOT_URL//unmerged/"
export Pipeline__Areas__cache="$HTTP_URL/cache/"
export Pipeline__Areas__output="$HTTP_URL/output/"
export Pipeline__Areas__logs="$HTTP_URL/logs/"
dotnet "$host_dll" demo
echo "remote-demo: tape mounts: $(sort "$TAPE_LIBRARY/mounts" | uniq -c | tr -s ' ' | paste -sd, -)" >&2
