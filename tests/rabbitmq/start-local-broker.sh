#!/usr/bin/env bash
# Installs RabbitMQ from Debian if needed and starts it on this machine (127.0.0.1:5672, guest/guest).
# Idempotent: a broker that already runs is left as it is.
set -euo pipefail

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

bash "$(dirname "$0")/../ensure-debian-package.sh" /usr/sbin/rabbitmq-server rabbitmq-server

if ! sudo_if_needed rabbitmqctl -q ping --timeout 10 >/dev/null 2>&1; then
  echo "Starting RabbitMQ on 127.0.0.1..." >&2
  # Loopback only: the test broker has the default guest account.
  sudo_if_needed env RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached
  # -detached returns before the node has registered with epmd, and await_startup fails at once
  # against a node it cannot reach, so first wait until the node answers at all.
  deadline=$((SECONDS + 180))
  until sudo_if_needed rabbitmqctl -q ping --timeout 10 >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "RabbitMQ did not answer within 180 s; its log:" >&2
      tail -n 50 /var/log/rabbitmq/*.log >&2 || true
      exit 1
    fi
    sleep 1
  done
fi
sudo_if_needed rabbitmqctl -q await_startup --timeout 180
echo "RabbitMQ is running." >&2
