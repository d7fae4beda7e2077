#!/usr/bin/env bash
# `make test`: start what the tests need, run every test, and close with one plain summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${RABBITMQ_URI:-}" ] && ! docker info >/dev/null 2>&1; then
  bash tests/rabbitmq/start-local-broker.sh
fi

configuration="${CONFIGURATION:-Release}"
dotnet build Pipeline.sln -c "$configuration" --nologo -v quiet
log=$(mktemp)
status=0
dotnet test Pipeline.sln -c "$configuration" --no-build --nologo --logger "console;verbosity=normal" 2>&1 | tee "$log" || status=$?

summary=$(grep -E '(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
  failed=$(sed -E 's/.*Failed: +([0-9]+).*/\1/' <<<"$summary")
  passed=$(sed -E 's/.*Passed: +([0-9]+).*/\1/' <<<"$summary")
  skipped=$(sed -E 's/.*Skipped: +([0-9]+).*/\1/' <<<"$summary")
  grep -E '^\s+Skipped ' "$log" || true
  echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
else
  echo "tests: no test summary found" >&2
  status=1
fi
rm -f "$log"
exit "$status"
