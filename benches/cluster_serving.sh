#!/usr/bin/env bash
# Serving on the cluster shape, and what the read cache does for it: starts two release
# `deploystack-server` nodes and one `deploystack-worker` on PostgreSQL, Redis and S3, deploys
# a small site through node A, loads both nodes with wrk (64 connections, loopback, a fixed
# duration), and prints requests/s, latency and each node's cache hit rate from /metrics.
# Then the same with the cache off (DEPLOYSTACK_CACHE_MAX_BYTES=0), for comparison.
#
#   scripts/with-services benches/cluster_serving.sh          # DURATION=10 by default
#
# Needs wrk (apt-get install wrk) and the engines' variables, which scripts/with-services sets.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
: "${DATABASE_URL:?run through scripts/with-services}" "${REDIS_URL:?}" "${S3_ENDPOINT:?}"

cargo build --quiet --release --features postgres,redis,s3 \
  -p deploystack-http -p deploystack-worker
BIN=target/release
WORK=$(mktemp -d)
PIDS=()
DATABASES=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${DATABASES[@]}"; do psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_node NAME [VAR=VALUE...]: a server on a free port; sets NODE to its address.
start_node() {
  local name=$1
  shift
  env "$@" DEPLOYSTACK_LISTEN=127.0.0.1:0 RUST_LOG=warn,deploystack_http=info \
    "$BIN/deploystack-server" >/dev/null 2>"$WORK/$name.log" &
  PIDS+=($!)
  for _ in $(seq 100); do
    if grep -q "listening on http://" "$WORK/$name.log"; then
      NODE=$(grep -o "listening on http://[0-9.:]*" "$WORK/$name.log" | head -n1 | sed 's/.*http:\/\///')
      return 0
    fi
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$WORK/$name.log" >&2
  return 1
}

# measure LABEL CACHE_BYTES: one cluster (fresh database and prefixes), deploy, load, report.
measure() {
  local label=$1 cache_bytes=$2
  local tag db
  tag="bench_$(date +%s%N | tail -c 9)"
  db="${DATABASE_URL%/*}/$tag"
  psql -q "$DATABASE_URL" -c "CREATE DATABASE $tag" >/dev/null
  DATABASES+=("$tag")
  local common=(
    DEPLOYSTACK_DATABASE_URL="$db" DEPLOYSTACK_QUEUE_URL="$REDIS_URL"
    DEPLOYSTACK_CACHE_URL="$REDIS_URL" DEPLOYSTACK_REDIS_PREFIX="$tag"
    DEPLOYSTACK_STORAGE_URL="s3://$S3_BUCKET/$tag" DEPLOYSTACK_CACHE_MAX_BYTES="$cache_bytes"
    AWS_ENDPOINT_URL="$S3_ENDPOINT" AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
    AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" AWS_REGION="$AWS_REGION" AWS_ALLOW_HTTP=true
  )
  local a b
  start_node "a-$tag" "${common[@]}"
  a=$NODE
  start_node "b-$tag" "${common[@]}"
  b=$NODE
  env "${common[@]}" RUST_LOG=warn "$BIN/deploystack-worker" >/dev/null 2>"$WORK/worker-$tag.log" &
  PIDS+=($!)

  mkdir -p "$WORK/site/$tag"
  head -c 2048 /dev/urandom | base64 >"$WORK/site/$tag/index.html"
  (cd "$WORK/site/$tag" && zip -q -r "$WORK/$tag.zip" .)
  local id
  id=$(curl -sf -F "file=@$WORK/$tag.zip" "http://$a/deploy" | sed 's/.*"deployment_id":"\([0-9a-f]*\)".*/\1/')
  for _ in $(seq 300); do
    curl -sf "http://$a/api/v1/deployments/$id" | grep -q '"status":"READY"' && break
    sleep 0.1
  done

  echo "== $label: GET /<id>/ (2.7 KB), wrk -t2 -c64 -d${DURATION}s per node"
  for node in "$a" "$b"; do
    wrk -t2 -c64 -d"${DURATION}s" --latency "http://$node/$id/" |
      grep -E "Requests/sec|50%|99%|Non-2xx" | sed "s/^/  $node /"
    curl -sf "http://$node/metrics" |
      grep -E '^deploystack_cache_(hits_total|misses_total|hit_ratio)' | sed "s/^/  $node /" || true
  done
}

measure "cache on (in-process + Redis)" 67108864
measure "cache off" 0
