#!/usr/bin/env bash
# The webhook benchmark (make bench). Loopback only; needs PostgreSQL, Redis and wrk.
#
# Targets, measured in the same run against gunicorn + PostgreSQL (database chatai_bench):
#   baseline  POST /bench/baseline: parse the form and insert one row (the floor)
#   ack       POST /api/webhooks/whatsapp with a Redis broker: verify, store, queue the task;
#             every request from a new contact (contact and thread created)
#   ack_known the same, from 500 contacts writing in turn (contact and thread found)
#   pipeline  POST /api/webhooks/whatsapp with in-process tasks: verify, store, run the
#             fitness flow, send both replies to a local stand-in for Twilio's API
#   worker    the pipeline with a Redis broker and a real Celery worker, at a fixed rate
#             (bench/latency.py): the time from the webhook's answer to the first reply
#             reaching the stand-in
# For each: requests per second, latency p50/p99, the server's CPU per request (gunicorn and
# Celery process trees, from /proc, and PostgreSQL's), and SQL statements per message
# (counted in-process afterwards, bench/statements.py). Each request is a pre-built Twilio
# delivery with its own MessageSid and sender.
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
RATE=${BENCH_WORKER_RATE:-20}        # messages a second for the worker target
CELERY=${CELERY:-.venv/bin/celery}
POSTMASTER=$(pgrep -o -x postgres || pgrep -o postgres || echo 0)
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

start_worker() {
  CELERY_BROKER_URL="$REDIS" $CELERY -A chatai worker --concurrency "$(nproc)" \
    --loglevel warning --without-gossip --without-mingle > "$WORK/celery.log" 2>&1 &
  CELERY_PID=$!
  PIDS+=($CELERY_PID)
  sleep 3
}

stop_worker() {
  kill "$CELERY_PID"; wait "$CELERY_PID" 2>/dev/null || true
}

cpu() {  # CPU seconds so far: the app's process trees, then PostgreSQL's
  echo "$($PY bench/procstat.py "$SERVER" ${CELERY_PID:-}) $($PY bench/procstat.py "$POSTMASTER")"
}

record_cpu() {  # $1 target, $2 cpu before, $3 cpu after
  echo "$1 $2 $3" >> "$WORK/cpu.txt"
}

measure() {  # $1 target, $2 path
  local before
  before=$(cpu)
  wrk --threads "$THREADS" --connections "$CONNECTIONS" --duration "${DURATION}s" --timeout 10s \
    -s bench/replay.lua "http://127.0.0.1:$PORT" -- "$WORK/$1.txt" "$2" "$THREADS" \
    | grep '^BENCH ' | sed "s/^BENCH /$1 /" >> "$WORK/results.txt"
  record_cpu "$1" "$before" "$(cpu)"
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
redis-cli -u "$REDIS" flushdb >/dev/null  # the ack targets' tasks: nobody processes them
start_server "$REDIS"
start_worker
before=$(cpu)
$PY bench/latency.py "http://127.0.0.1:$PORT" /api/webhooks/whatsapp "$WORK/worker.txt" \
  "$RATE" "$DURATION" "http://127.0.0.1:$STANDIN_PORT" | sed "s/^/worker /" >> "$WORK/latency.txt"
record_cpu worker "$before" "$(cpu)"
stop_worker
stop_server
CELERY_PID=

# SQL statements per message, in-process (wrk never sends the files' last lines)
for target in ack ack_known; do
  CELERY_BROKER_URL="$REDIS" $PY bench/statements.py "$target" "$WORK/$target.txt" \
    /api/webhooks/whatsapp 200 >> "$WORK/statements.txt"
done
$PY bench/statements.py pipeline "$WORK/pipeline.txt" /api/webhooks/whatsapp 200 \
  >> "$WORK/statements.txt"
redis-cli -u "$REDIS" flushdb >/dev/null

$PY bench/report.py "$WORK" "http://127.0.0.1:$STANDIN_PORT"

psql "$DATABASE_URL" -qtAc "SELECT 'stored inbound: ' || count(*) FROM conversations_message WHERE direction='inbound'"
psql "$DATABASE_URL" -qtAc "SELECT 'sent outbound: ' || count(*) FROM conversations_message WHERE direction='outbound' AND status='sent'"
