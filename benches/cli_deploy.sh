#!/usr/bin/env bash
# The `deploystack` CLI's deploys against `zip` + `curl`, on the embedded shape (one release
# `deploystack-server`, SQLite, local storage, in-process queue, loopback only), with a
# generated static site of FILES files (1,000 by default, ~2 KB each):
#
#   (a) first deploy: `deploystack deploy SITE` on a fresh server, from command start to
#       READY (the command returns then), against `zip -qr` + `curl -F file=@site.zip` +
#       polling the deployment every 20 ms until READY, also on a fresh server;
#   (b) redeploy with one file changed: command start to READY, and how many files it sent.
#
# Each case runs ROUNDS times (3 by default), each on a fresh server; the median is
# reported. Figures, not assertions: the targets are in benches/RESULTS.md.
#
#   benches/cli_deploy.sh                 # builds both binaries in release first
#   NO_BUILD=1 FILES=1000 ROUNDS=3 benches/cli_deploy.sh
#
# Needs zip, curl and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-1000}
ROUNDS=${ROUNDS:-3}
BIN=${CARGO_TARGET_DIR:-target}/release
for tool in zip curl jq; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --quiet --release -p deploystack-http --bin deploystack-server \
    -p deploystack-cli --bin deploystack
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_server: a fresh server (new data directory) on a free port; sets URL.
start_server() {
  stop_server
  local data
  data=$(mktemp -d -p "$WORK")
  DEPLOYSTACK_DATA_DIR="$data" DEPLOYSTACK_LISTEN=127.0.0.1:0 RUST_LOG=warn,deploystack_http=info \
    "$BIN/deploystack-server" >/dev/null 2>"$data.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if grep -q "listening on http://" "$data.log"; then
      URL="http://$(grep -o "listening on http://[0-9.:]*" "$data.log" | head -n1 | sed 's/.*http:\/\///')"
      return 0
    fi
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$data.log" >&2
  exit 1
}

stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# build_ms ID: how long the server took from accepting deployment ID to READY (created_at to
# ready_at), to tell the upload's share of a deploy from the server's build and publish.
build_ms() {
  local answer created ready
  answer=$(curl -sf "$URL/api/v1/deployments/$1")
  created=$(date -d "$(jq -r .created_at <<<"$answer")" +%s%3N)
  ready=$(date -d "$(jq -r .ready_at <<<"$answer")" +%s%3N)
  echo $((ready - created))
}

# median of the arguments
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The site: an index and FILES-1 pages in 20 folders, each ~2 KB of distinct text.
SITE="$WORK/site"
mkdir -p "$SITE"
echo "<h1>bench</h1>" >"$SITE/index.html"
for i in $(seq 1 $((FILES - 1))); do
  dir="$SITE/section$((i % 20))"
  mkdir -p "$dir"
  {
    echo "<h2>page $i</h2>"
    for line in $(seq 1 40); do echo "<p>page $i line $line: lorem ipsum dolor sit amet</p>"; done
  } >"$dir/page$i.html"
done
SITE_BYTES=$(du -sb "$SITE" | cut -f1)
echo "site: $FILES files, $SITE_BYTES bytes"

export NO_COLOR=1

cli_first=()
cli_build=()
zip_first=()
zip_build=()
redeploy=()
redeploy_sent=()
for round in $(seq 1 "$ROUNDS"); do
  # (a) the CLI's first deploy, on a fresh server.
  start_server
  start=$(now_ms)
  DEPLOYSTACK_URL="$URL" "$BIN/deploystack" deploy "$SITE" --project bench --json >"$WORK/first.json"
  cli_first+=($(($(now_ms) - start)))
  [[ $(jq -r .status "$WORK/first.json") == READY ]] || { cat "$WORK/first.json"; exit 1; }
  cli_build+=("$(build_ms "$(jq -r .id "$WORK/first.json")")")

  # (b) one file changed, same server: command start to READY.
  echo "<h1>bench round $round</h1>" >"$SITE/index.html"
  start=$(now_ms)
  DEPLOYSTACK_URL="$URL" "$BIN/deploystack" deploy "$SITE" --project bench --json >"$WORK/second.json"
  redeploy+=($(($(now_ms) - start)))
  redeploy_sent+=("$(jq -r .uploaded "$WORK/second.json")")
  [[ $(jq -r .status "$WORK/second.json") == READY ]] || { cat "$WORK/second.json"; exit 1; }

  # (a) zip + curl + polling until READY, on a fresh server.
  start_server
  rm -f "$WORK/site.zip"
  start=$(now_ms)
  (cd "$SITE" && zip -qr "$WORK/site.zip" .)
  id=$(curl -sf -F file=@"$WORK/site.zip" -F project=bench "$URL/api/v1/deployments" | jq -r .id)
  for _ in $(seq 3000); do
    status=$(curl -sf "$URL/api/v1/deployments/$id" | jq -r .status)
    [[ $status == READY || $status == ERROR ]] && break
    sleep 0.02
  done
  zip_first+=($(($(now_ms) - start)))
  [[ $status == READY ]] || { echo "zip deploy ended $status" >&2; exit 1; }
  zip_build+=("$(build_ms "$id")")
  echo "round $round: cli first ${cli_first[-1]} ms (server ${cli_build[-1]}), redeploy ${redeploy[-1]} ms (sent ${redeploy_sent[-1]}), zip+curl ${zip_first[-1]} ms (server ${zip_build[-1]})"
done
stop_server

cli=$(median "${cli_first[@]}")
zipped=$(median "${zip_first[@]}")
again=$(median "${redeploy[@]}")
echo
echo "median of $ROUNDS rounds, $FILES files ($SITE_BYTES bytes):"
echo "  (a) CLI first deploy:         $cli ms (server, accepted to READY: $(median "${cli_build[@]}") ms)"
echo "  (a) zip + curl + poll:        $zipped ms (server, accepted to READY: $(median "${zip_build[@]}") ms)"
echo "  (b) CLI redeploy, 1 changed:  $again ms, files sent: ${redeploy_sent[*]}"
awk -v c="$cli" -v z="$zipped" -v r="$again" 'BEGIN {
  printf "  CLI first / zip+curl:        %.2f (target <= 1.5)\n", c / z
  printf "  redeploy / CLI first:        %.3f (target <= 0.10, and under 1000 ms)\n", r / c
}'
