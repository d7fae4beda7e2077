#!/usr/bin/env bash
# A PostgreSQL 15 server of its own for the tests and the demo: local-server.sh start|stop DIR [ADDRESS]
#
# start: makes a cluster in DIR/data (once), with one user "pipeline" whose password is in DIR/password (scram-sha-256,
#        no trust), and starts it on a free port of ADDRESS (127.0.0.1 by default). Writes DIR/server.env:
#          CONNECTION=Host=...;Port=...;Database=pipeline;Username=pipeline   (no password)
#          PASSWORD_FILE=DIR/password
#        Started again on the same DIR it keeps its port and its data (the fault suite restarts it mid-run).
# stop:  stops it (fast shutdown: open transactions are rolled back, as in a crash of the clients' side).
#
# Installs postgresql-15 from Debian when missing. The server refuses to run as root, so as root it runs as the
# "postgres" user the package made.
set -euo pipefail

command="${1:?usage: local-server.sh start|stop DIR [ADDRESS]}"
dir="$(realpath -m "${2:?usage: local-server.sh start|stop DIR [ADDRESS]}")"
address="${3:-127.0.0.1}"
bin=/usr/lib/postgresql/15/bin

bash "$(dirname "$0")/../ensure-debian-package.sh" "$bin/postgres" postgresql-15

as_server() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case "$command" in
  start)
    mkdir -p "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      mkdir -p "$dir/data" "$dir/socket"
      # The password: random, in a file only its owner reads; the server gets it once, at initdb.
      head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$dir/password"
      chmod 600 "$dir/password"
      cp "$dir/password" "$dir/data.pwfile"
      if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres:postgres "$dir/data" "$dir/socket" "$dir/data.pwfile"
        # The server must reach its folders: the parents are searchable (not readable) by others.
        p="$dir"; while [ "$p" != "/" ]; do chmod o+x "$p" 2>/dev/null || true; p="$(dirname "$p")"; done
      fi
      as_server "$bin/initdb" -D "$dir/data" -U pipeline --pwfile="$dir/data.pwfile" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      rm -f "$dir/data.pwfile"
      free_port > "$dir/port"
    fi
    port="$(cat "$dir/port")"
    # Clients from the tests' network hosts (a bridge address), with the same password rule as on loopback.
    if [ "$address" != "127.0.0.1" ] && ! grep -q "^host all all 0.0.0.0/0" "$dir/data/pg_hba.conf"; then
      echo "host all all 0.0.0.0/0 scram-sha-256" >> "$dir/data/pg_hba.conf"
    fi
    if ! as_server "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      # fsync stays on: a restarted server must hold every commit it acknowledged.
      as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 start \
        -o "-c listen_addresses=$address -p $port -k $dir/socket -c max_connections=300 -c shared_buffers=128MB" >/dev/null \
        || { tail -20 "$dir/data/server.log" >&2; exit 1; }
    fi
    # The database, once (createdb through the server's own socket, as the cluster's owner).
    if ! PGPASSWORD="$(cat "$dir/password")" "$bin/psql" -h "$address" -p "$port" -U pipeline -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'pipeline'" | grep -q 1; then
      PGPASSWORD="$(cat "$dir/password")" "$bin/createdb" -h "$address" -p "$port" -U pipeline pipeline
    fi
    cat > "$dir/server.env" <<EOF
CONNECTION=Host=$address;Port=$port;Database=pipeline;Username=pipeline
PASSWORD_FILE=$dir/password
PORT=$port
EOF
    echo "PostgreSQL is serving on $address:$port (data in $dir/data)." >&2
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    echo "usage: local-server.sh start|stop DIR [ADDRESS]" >&2
    exit 2
    ;;
esac
