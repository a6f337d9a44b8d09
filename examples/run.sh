#!/usr/bin/env bash
# make examples: runs every example scenario against real software from Debian's packages
# (nginx, redis-server, webdis) and requires each to meet its expectation. A
# scenario that declares expect_failure exits 0 when its check fails for the stated
# reason, so every line below must exit 0. Arguments replace the list.
# FAULTLINE_RUNTIME=docker runs them as containers (images built FROM scratch of the same
# host binaries: make examples-docker).
set -uo pipefail

cd "$(dirname "$0")/.."
BIN="${BIN:-bin/faultline}"
RUNTIME="${FAULTLINE_RUNTIME:-local}"

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  scenarios=(
    examples/http-service/scenario.yaml
    examples/nginx-failover/upstream-latency.yaml
    examples/nginx-failover/upstream-latency-no-timeouts.yaml
    examples/nginx-failover/upstream-crash.yaml
    examples/redis-webdis/slow-redis.yaml
    examples/redis-webdis/redis-link-down.yaml
  )
fi

missing=()
for prog in /usr/sbin/nginx /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/webdis; do
  [ -x "$prog" ] || missing+=("$prog")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "examples: missing ${missing[*]}" >&2
  echo "examples: install them with: apt-get install -y nginx redis-server webdis" >&2
  exit 3
fi
if [ ! -x "$BIN" ]; then
  echo "examples: $BIN not built; run make build" >&2
  exit 3
fi

summary=()
failed=0
for s in "${scenarios[@]}"; do
  echo "== $s ($RUNTIME)"
  start=$(date +%s.%N)
  "$BIN" run "$s" --runtime "$RUNTIME"
  rc=$?
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  summary+=("$(printf 'exit %d  %6ss  %s' "$rc" "$secs" "$s")")
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
done

echo "== examples ($RUNTIME runtime)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -gt 0 ]; then
  echo "examples: $failed of ${#scenarios[@]} did not meet their expectation" >&2
  exit 1
fi
echo "examples: all ${#scenarios[@]} met their expectation"
