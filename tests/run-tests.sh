#!/usr/bin/env bash
# `make test`: start what the tests need, run every test, and close with one plain summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${RABBITMQ_URI:-}" ] && ! docker info >/dev/null 2>&1; then
  bash tests/rabbitmq/start-local-broker.sh
fi

# The dashboard test opens the page in Debian's Chromium; the short load run drives the API with Debian's hey.
bash tests/ensure-debian-package.sh /usr/bin/chromium chromium
bash tests/ensure-debian-package.sh /usr/bin/hey hey
# The alert rules and the dashboard's queries are checked with promtool, from Debian's prometheus package.
bash tests/ensure-debian-package.sh /usr/bin/promtool prometheus
# The storage tests start a real XRootD server (root:// and HTTP/WebDAV) on free ports of their own.
bash tests/ensure-debian-package.sh /usr/bin/xrootd xrootd-server
bash tests/ensure-debian-package.sh /usr/bin/xrdcp xrootd-client
bash tests/ensure-debian-package.sh "/usr/lib/$(uname -m)-linux-gnu/libXrdHttp-5.so" xrootd-server-plugins
# The batch tests start one-node Slurm clusters of their own (munged, slurmctld, slurmd on loopback).
bash tests/ensure-debian-package.sh /usr/sbin/munged munge
bash tests/ensure-debian-package.sh /usr/sbin/slurmctld slurmctld
bash tests/ensure-debian-package.sh /usr/sbin/slurmd slurmd
bash tests/ensure-debian-package.sh /usr/bin/sbatch slurm-client
# gfal2's tools drive the schemes the project does not speak itself; the tests point them at the same XRootD server.
bash tests/ensure-debian-package.sh /usr/bin/python python-is-python3
bash tests/ensure-debian-package.sh /usr/bin/gfal-copy gfal2-util-scripts
bash tests/ensure-debian-package.sh "/usr/lib/$(uname -m)-linux-gnu/gfal2-plugins/libgfal_plugin_xrootd.so" gfal2-plugin-xrootd
bash tests/ensure-debian-package.sh "/usr/lib/$(uname -m)-linux-gnu/gfal2-plugins/libgfal_plugin_http.so" gfal2-plugin-http
bash tests/ensure-debian-package.sh "/usr/lib/$(uname -m)-linux-gnu/gfal2-plugins/libgfal_plugin_file.so" gfal2-plugin-file

configuration="${CONFIGURATION:-Release}"
dotnet build Pipeline.sln -c "$configuration" --nologo -v quiet
log=$(mktemp)
status=0
dotnet test Pipeline.sln -c "$configuration" --no-build --nologo --logger "console;verbosity=normal" 2>&1 | tee "$log" || status=$?

count() { grep -E "^ *$1: +[0-9]+ *$" "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0; }
if grep -qE '^Total tests: +[0-9]+' "$log"; then
  passed=$(count Passed); failed=$(count Failed); skipped=$(count Skipped)
  # Skipped tests are listed with their reasons, never counted as passed.
  if grep -q '\[SKIP\]' "$log"; then
    echo "Skipped, with the reason:"
    grep -A1 -F '[SKIP]' "$log" | grep -v '^--$' | sed -E 's/^\[xUnit\.net [0-9:.]+\] +/  /'
  fi
  # The slowest tests, so that the suite's time budget stays visible as real servers join it. The first ten are
  # kept by awk, which reads to the end: `head` would close the pipe early, and under pipefail sort's SIGPIPE
  # (status 141) would fail a green run.
  echo "Slowest tests:"
  sed -nE 's/^ +(Passed|Failed) (.+) \[(.+)\]$/\3\t\2/p' "$log" |
    awk -F'\t' '{ s = 0; n = split($1, part, " "); for (i = 1; i < n; i += 2) { v = part[i]; u = part[i + 1];
        s += (u == "m" ? v * 60 : u == "s" ? v : u == "ms" ? v / 1000 : 0) }
      printf "%9.1f s  %s\n", s, $2 }' | sort -rn | awk 'NR <= 10'
  # Failures come last, after the skip list, so that the end of the output names them.
  if grep -q '\[FAIL\]' "$log"; then
    echo "Failed, with the first lines of the reason:"
    sed -E 's/^\[xUnit\.net [0-9:.]+\] +/  /' "$log" |
      awk '/\[FAIL\]/ { shown = 0; printing = 1 } printing && /Stack Trace:/ { printing = 0 } printing && shown++ < 12'
  fi
  echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
else
  echo "tests: no test summary found" >&2
  status=1
fi
rm -f "$log"
exit "$status"
