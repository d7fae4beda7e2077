#!/usr/bin/env bash
# Installs a Debian package unless the file it provides is already there: ensure-debian-package.sh FILE PACKAGE
set -euo pipefail
file="$1"
package="$2"
if [ -e "$file" ]; then
  exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
echo "Installing $package from Debian..." >&2
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
