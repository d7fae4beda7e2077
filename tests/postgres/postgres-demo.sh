#!/usr/bin/env bash
# `make demo STORE=postgres`: runs the demo's command (the rest of the arguments) with its state in a PostgreSQL
# server started for it on loopback and stopped after. The server's files are kept in DEMO_DIR/state-server with
# the demo's other state; the password stays in a file there, never on a command line.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: postgres-demo.sh COMMAND..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
export DEMO_DIR=${DEMO_DIR:-data/demo-$(date -u +%Y%m%d-%H%M%S)}
server="$DEMO_DIR/state-server"
mkdir -p "$server"
trap 'bash "$here/local-server.sh" stop "$server"' EXIT
bash "$here/local-server.sh" start "$server"
export Pipeline__Store=Postgres
# The connection string holds semicolons: read, not sourced.
Pipeline__Postgres__ConnectionString=$(sed -n 's/^CONNECTION=//p' "$server/server.env")
Pipeline__Postgres__PasswordFile=$(sed -n 's/^PASSWORD_FILE=//p' "$server/server.env")
export Pipeline__Postgres__ConnectionString Pipeline__Postgres__PasswordFile
"$@"
