#!/usr/bin/env bash
# Hosts for the tests as Linux network namespaces on a bridge of their own: each host has its own network stack and
# address, and reaches the others (and this machine, at the bridge's address) only over the bridge. Needs root and
# iproute2 (installed from Debian when missing).
#   hosts.sh up BRIDGE SUBNET HOST...   a bridge BRIDGE at SUBNET.1/24 and, per HOST, a namespace BRIDGE-HOST at
#                                       SUBNET.2, .3, ... in the order given; prints "HOST NAMESPACE ADDRESS" per host
#   hosts.sh down BRIDGE HOST...        kills what still runs in them and removes them (idempotent)
#   hosts.sh cut BRIDGE HOST            takes the host's link down: nothing reaches it, nothing leaves it
#   hosts.sh restore BRIDGE HOST        brings the link back up
# BRIDGE is at most 10 characters and HOST at most 4 (a link's name is at most 15).
set -euo pipefail

command=${1:?usage: hosts.sh up|down|cut|restore BRIDGE ...}
bridge=${2:?usage: hosts.sh up|down|cut|restore BRIDGE ...}
shift 2
here=$(cd "$(dirname "$0")" && pwd)

case "$command" in
  up)
    subnet=${1:?usage: hosts.sh up BRIDGE SUBNET HOST...}
    shift
    bash "$here/../ensure-debian-package.sh" /usr/sbin/ip iproute2
    "$0" down "$bridge" "$@"
    # Name lookups on a host answer from its own files: every host of the network by name and address, and no DNS
    # server (refused at once on the host's loopback), so that a server's reverse lookup of a client never waits on a
    # nameserver the namespace cannot reach. ip netns exec puts /etc/netns/NAMESPACE/* in place of /etc/*.
    names=$(mktemp)
    {
      cat /etc/hosts
      echo "$subnet.1 $bridge"
      number=2
      for host in "$@"; do echo "$subnet.$number $bridge-$host"; number=$((number + 1)); done
    } > "$names"
    ip link add "$bridge" type bridge
    ip addr add "$subnet.1/24" dev "$bridge"
    ip link set "$bridge" up
    number=2
    for host in "$@"; do
      namespace="$bridge-$host"
      ip netns add "$namespace"
      mkdir -p "/etc/netns/$namespace"
      cp "$names" "/etc/netns/$namespace/hosts"
      echo "nameserver 127.0.0.1" > "/etc/netns/$namespace/resolv.conf"
      # Read by servers running as users of their own (rabbitmq, nobody); mktemp made the list for root only.
      chmod 0644 "/etc/netns/$namespace/hosts" "/etc/netns/$namespace/resolv.conf"
      # The host's end of the link is named after the namespace, on the bridge; its end inside is eth0.
      ip link add "$namespace" type veth peer name eth0 netns "$namespace"
      ip link set "$namespace" master "$bridge" up
      ip -n "$namespace" addr add "$subnet.$number/24" dev eth0
      ip -n "$namespace" link set eth0 up
      ip -n "$namespace" link set lo up
      ip -n "$namespace" route add default via "$subnet.1"
      echo "$host $namespace $subnet.$number"
      number=$((number + 1))
    done
    rm -f "$names"
    ;;
  down)
    for host in "$@"; do
      # A process left in a namespace (a server's helper such as epmd) would live on, unreachable, after it is gone.
      for pid in $(ip netns pids "$bridge-$host" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$bridge-$host" 2>/dev/null || true
      rm -rf "/etc/netns/$bridge-$host"
      ip link del "$bridge-$host" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    ;;
  cut)
    ip link set "$bridge-${1:?usage: hosts.sh cut BRIDGE HOST}" down
    ;;
  restore)
    ip link set "$bridge-${1:?usage: hosts.sh restore BRIDGE HOST}" up
    ;;
  *)
    echo "usage: hosts.sh up|down|cut|restore BRIDGE ..." >&2
    exit 2
    ;;
esac
