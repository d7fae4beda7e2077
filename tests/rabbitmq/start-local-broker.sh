#!/usr/bin/env bash
# Installs RabbitMQ from Debian if needed and starts it on this machine (127.0.0.1:5672, guest/guest).
# Idempotent: a broker that already runs is left as it is.
set -euo pipefail

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
  echo "Installing rabbitmq-server from Debian..." >&2
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi

if ! sudo_if_needed rabbitmqctl -q status >/dev/null 2>&1; then
  echo "Starting RabbitMQ on 127.0.0.1..." >&2
  sudo_if_needed rabbitmq-server -detached
fi
sudo_if_needed rabbitmqctl -q await_startup --timeout 180
echo "RabbitMQ is running." >&2
