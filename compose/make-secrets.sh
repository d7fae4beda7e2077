#!/usr/bin/env bash
# Makes the container deployment's secrets that do not exist yet: the PostgreSQL password, random, in a file that
# compose hands to the database and to every service as /run/secrets/postgres-password. An existing one is kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
password="$here/secrets/postgres-password"
if [ ! -s "$password" ]; then
  mkdir -p "$here/secrets"
  # Readable by the services' unprivileged user inside their containers (compose mounts the file as it is).
  (umask 022 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$password")
  echo "Made $password"
fi
