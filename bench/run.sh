#!/usr/bin/env bash
# The webhook benchmark (make bench). Loopback only; needs PostgreSQL, Redis and wrk.
#
# Three targets, measured in the same run against gunicorn + PostgreSQL (database chatai_bench):
#   baseline  POST /bench/baseline: parse the form and insert one row (the floor)
#   ack       POST /api/webhooks/whatsapp with a Redis broker: verify, store, queue the task;
#             every request from a new contact (contact and thread created)
#   ack_known the same, from 500 contacts writing in turn (contact and thread found)
#   pipeline  POST /api/webhooks/whatsapp with in-process tasks: verify, store, run the
#             fitness flow, send both replies to a local stand-in for Twilio's API
# Each request is a pre-built Twilio delivery with its own MessageSid and sender.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
GUNICORN=${GUNICORN:-.venv/bin/gunicorn}
PG_URL=${BENCH_PG_URL:-postgresql://postgres@127.0.0.1:5432}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/15}
PORT=${BENCH_PORT:-8765}
STANDIN_PORT=${BENCH_STANDIN_PORT:-8766}
DURATION=${BENCH_DURATION:-10}       # seconds per target
CONNECTIONS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-$(( $(nproc) * 2 + 1 ))}
COUNT=${BENCH_REQUESTS:-40000}       # pre-built requests per target (more than are sent)
WORK=$(mktemp -d)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

export DJANGO_SETTINGS_MODULE=bench.settings
export DATABASE_URL="$PG_URL/chatai_bench"
export DEBUG=false SECURE_SSL_REDIRECT=false SECURE_HSTS_SECONDS=0
export SECRET_KEY=bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz
export PII_ENCRYPTION_KEYS=fyBY6kCqRcT6DQQxRC5fJVrO5rRiZfPm3qNQeLuMiY8=
export PII_LOOKUP_KEY=bench-lookup-key
export PUBLIC_BASE_URL="http://127.0.0.1:$PORT" ALLOWED_HOSTS=127.0.0.1
export REDIS_URL="$REDIS" LOG_LEVEL=${BENCH_LOG_LEVEL:-WARNING}
unset CELERY_BROKER_URL TWILIO_ACCOUNT_SID TWILIO_AUTH_TOKEN

psql "$PG_URL/postgres" -qtc "SELECT 1 FROM pg_database WHERE datname='chatai_bench'" | grep -q 1 \
  || psql "$PG_URL/postgres" -qc "CREATE DATABASE chatai_bench"
# start from empty tables so every run measures the same thing
psql "$DATABASE_URL" -qc "DROP SCHEMA public CASCADE; CREATE SCHEMA public;" >/dev/null
$PY manage.py migrate --no-input -v 0
redis-cli -u "$REDIS" flushdb >/dev/null

$PY bench/standin.py "$STANDIN_PORT" > "$WORK/standin.log" 2>&1 &
PIDS+=($!)
$PY bench/prepare.py "$WORK" "$COUNT" "http://127.0.0.1:$STANDIN_PORT"

start_server() {  # $1: broker url or empty
  CELERY_BROKER_URL="$1" $GUNICORN chatai.wsgi --bind "127.0.0.1:$PORT" --workers "$WORKERS" \
    --worker-class sync --log-level warning --access-logfile /dev/null \
    > "$WORK/gunicorn.log" 2>&1 &
  SERVER=$!
  PIDS+=($SERVER)
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "gunicorn did not start:" >&2; cat "$WORK/gunicorn.log" >&2; exit 1
}

stop_server() {
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
}

measure() {  # $1 target, $2 path
  wrk --threads "$THREADS" --connections "$CONNECTIONS" --duration "${DURATION}s" --timeout 10s \
    -s bench/replay.lua "http://127.0.0.1:$PORT" -- "$WORK/$1.txt" "$2" "$THREADS" \
    | grep '^BENCH ' | sed "s/^BENCH /$1 /" >> "$WORK/results.txt"
}

echo "gunicorn: $WORKERS sync workers; wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION}s per target"
start_server "$REDIS"
measure baseline /bench/baseline
measure ack /api/webhooks/whatsapp
# warm the 500 returning contacts so the measured requests find contact and thread
wrk --threads 1 --connections 4 --duration 5s -s bench/replay.lua \
  "http://127.0.0.1:$PORT" -- "$WORK/ack_known_warm.txt" /api/webhooks/whatsapp 1 >/dev/null
measure ack_known /api/webhooks/whatsapp
stop_server
start_server ""
measure pipeline /api/webhooks/whatsapp
stop_server

$PY - "$WORK/results.txt" "http://127.0.0.1:$STANDIN_PORT" <<'PYEOF'
import json
import sys
import urllib.request

rows = {}
for line in open(sys.argv[1]):
    name, data = line.split(" ", 1)
    rows[name] = json.loads(data)
base = rows["baseline"]["requests"] / (rows["baseline"]["duration_us"] / 1e6)
print(f"{'target':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12} {'errors':>7}")
for name in ("baseline", "ack", "ack_known", "pipeline"):
    r = rows[name]
    rps = r["requests"] / (r["duration_us"] / 1e6)
    errors = r["non_2xx"] + r["socket_errors"]
    print(f"{name:10} {rps:9.0f} {r['p50_us'] / 1000:8.1f} {r['p99_us'] / 1000:8.1f} "
          f"{rps / base:11.2f}x {errors:7d}")
posts = json.load(urllib.request.urlopen(sys.argv[2]))["posts"]
print(f"provider stand-in received {posts} sends "
      f"({posts / max(rows['pipeline']['requests'], 1):.2f} per pipeline request)")
PYEOF

psql "$DATABASE_URL" -qtAc "SELECT 'stored inbound: ' || count(*) FROM conversations_message WHERE direction='inbound'"
psql "$DATABASE_URL" -qtAc "SELECT 'sent outbound: ' || count(*) FROM conversations_message WHERE direction='outbound' AND status='sent'"
