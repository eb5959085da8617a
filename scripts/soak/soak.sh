#!/usr/bin/env bash
# The soak of docs/BENCHMARKS.md: two replicas on one PostgreSQL for
# DURATION seconds (default 600) at a moderate rate (RATE verify iterations a
# second: a PUT, its SMS through the webhook, a verify), sampling each
# replica's memory, goroutines, connections and queue every 30 s.
# Not run by CI. Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and
# drops and creates the database "soak".
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-600} RATE=${RATE:-80}
out=${OUT:-/tmp/userphone-soak}
mkdir -p "$out/bin" && rm -rf "$out/data"
go build -o "$out/bin/userphone" ./cmd/userphone
go build -o "$out/bin/userphone-load" ./cmd/userphone-load
go build -o "$out/bin/rrproxy" ./scripts/soak/rrproxy
psql -h 127.0.0.1 -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS soak' -c 'CREATE DATABASE soak'
secret=$(openssl rand -hex 32)
export USERPHONE_LOAD_WEBHOOK_SECRET=$(openssl rand -hex 32)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for r in 1 2; do
  env USERPHONE_SMS_PROVIDER=webhook USERPHONE_SMS_WEBHOOK_URL=http://127.0.0.1:9201/sms \
    USERPHONE_SMS_WEBHOOK_SECRET="$USERPHONE_LOAD_WEBHOOK_SECRET" USERPHONE_SECRET="$secret" \
    USERPHONE_LIMITS=off USERPHONE_DEV=1 \
    USERPHONE_ADDR=127.0.0.1:1810$r USERPHONE_METRICS_ADDR=127.0.0.1:1910$r USERPHONE_DATA_DIR="$out/data" \
    USERPHONE_DATABASE_URL='postgres://postgres@127.0.0.1:5432/soak?sslmode=disable' \
    "$out/bin/userphone" serve >"$out/replica-$r.log" 2>&1 &
  pids+=($!)
  sleep 4 # the first replica makes the dev key the second one reads
done
"$out/bin/rrproxy" 127.0.0.1:18100 http://127.0.0.1:18101 http://127.0.0.1:18102 & pids+=($!)
sleep 1
"$out/bin/userphone-load" -url http://127.0.0.1:18100/user/2021-2 -data-dir "$out/data" \
  -webhook-listen 127.0.0.1:9201 -scenario verify -rate "$RATE" -c 32 -d "${DURATION}s" -warmup 0s \
  -baseline off -json "$out/load.json" >"$out/load.txt" 2>&1 &
load=$!
for ((t = 30; t <= DURATION; t += 30)); do
  sleep 30
  for r in 1 2; do
    m=$(curl -s http://127.0.0.1:1910$r/metrics)
    get() { awk -v k="$1" '$1 == k {print $2}' <<<"$m"; }
    printf 't=%ds replica=%d rss_kb=%s goroutines=%s heap_bytes=%s pool_conns=%s queue=%s\n' "$t" "$r" \
      "$(awk '/VmRSS/ {print $2}' /proc/"${pids[$((r - 1))]}"/status)" "$(get go_goroutines)" \
      "$(get go_memstats_heap_inuse_bytes)" "$(get userphone_db_pool_connections)" \
      "$(get userphone_delivery_queue_depth)"
  done
done | tee "$out/samples.txt"
wait "$load"
tail -n 20 "$out/load.txt"
