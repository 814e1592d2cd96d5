#!/usr/bin/env bash
# Static serving speed beside nginx, in the same run: starts a release `deploystack-server`
# (embedded shape), deploys a standard fixture site (a ~2 KB index.html, a 100 KB JS file and
# 1000 small files), starts nginx on the same extracted files, and loads both with wrk
# (64 connections, 2 threads, loopback, DURATION seconds per run) for four cases: the small
# page, the 100 KB asset, a 404 and the 100 KB asset with `Accept-Encoding: gzip`. Prints
# requests/s, p50/p99 latency and the CPU time the server spent per request, the ratios
# ours/nginx per case, and the server's peak resident memory (VmHWM) over the whole run.
#
#   benches/serving_vs_nginx.sh                 # DURATION=10 ROUNDS=1 by default
#   ROUNDS=5 DURATION=10 benches/serving_vs_nginx.sh   # and the median ratio per case
#   NO_BUILD=1 SERVER_BIN=/tmp/ds benches/serving_vs_nginx.sh   # an existing binary
#
#   LOADGEN=oha benches/serving_vs_nginx.sh     # oha instead of wrk (cargo install oha)
#
# SPLIT=1 gives the servers and wrk a core each instead of sharing both: the servers are
# pinned to CPU 0 (nginx with one worker, ours with one serve thread) and wrk to CPU 1, which
# takes the way the kernel interleaves server and load-generator threads out of the tail.
#
# nginx runs `worker_processes 2` (the "nginx 2w" baseline of the reference measurements),
# access log off, `sendfile on`, `gzip_static on` with `.gz` copies made by `gzip -k -9`.
# Needs wrk, nginx, zip and curl (apt-get install -y wrk nginx zip curl). The machine has
# 2 cores shared by wrk and the server: read the ratios, and check the load (printed first).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
# SERVER_PIN / WRK_PIN: command prefixes that pin the servers and wrk (empty: unpinned).
SERVER_PIN=()
WRK_PIN=()
WORKERS=2
if [[ -n "${SPLIT:-}" ]]; then
  command -v taskset >/dev/null || { echo "SPLIT=1 needs taskset (util-linux)" >&2; exit 1; }
  SERVER_PIN=(taskset -c 0)
  WRK_PIN=(taskset -c 1)
  WORKERS=1
fi
LOADGEN=${LOADGEN:-wrk}
[[ $LOADGEN == wrk || $LOADGEN == oha ]] || { echo "LOADGEN is wrk or oha, not $LOADGEN" >&2; exit 1; }
for tool in "$LOADGEN" nginx zip curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install -y $tool)" >&2; exit 1; }
done

if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --quiet --release -p deploystack-http --bin deploystack-server
fi
# SERVER_BIN: a copy of the binary, e.g. when several worktrees share one target directory.
BIN=${SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/deploystack-server}
WORK=$(mktemp -d)
chmod 755 "$WORK" # nginx workers may run as another user
SERVER_PID=
NGINX_PID=
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  [[ -n "$NGINX_PID" ]] && kill "$NGINX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- The fixture site -------------------------------------------------------------------
SITE=$WORK/site
mkdir -p "$SITE/assets" "$SITE/files"
{
  echo '<!doctype html><html><head><meta charset="utf-8"><title>Fixture</title>'
  echo '<script src="/assets/app.js" defer></script></head><body><main>'
  for i in $(seq 30); do echo "<p>Paragraph $i of the benchmark fixture page, some text.</p>"; done
  echo '</main></body></html>'
} >"$SITE/index.html"
# Script-like text that compresses about as well as real minified code (gzip -9: ~4x).
awk 'BEGIN { srand(42); while (n < 102400) {
  s = sprintf("function f%d(a,b){return a*%d+b.k%x||\"%x%x\";}\n", n, int(rand()*1e6), int(rand()*4096), int(rand()*2^31), int(rand()*2^31))
  printf "%s", s; n += length(s) } }' >"$SITE/assets/app.js"
truncate -s 102400 "$SITE/assets/app.js"
for i in $(seq -w 1000); do echo "small file $i" >"$SITE/files/$i.txt"; done
(cd "$SITE" && zip -qr "$WORK/site.zip" .)
# Precompressed copies for nginx's gzip_static, made after zipping so the deployment is
# exactly the site; our server makes its own variants at deploy time (when it does).
gzip -k -9 "$SITE/index.html" "$SITE/assets/app.js"

# --- Our server ---------------------------------------------------------------------------
"${SERVER_PIN[@]}" env DEPLOYSTACK_LISTEN=127.0.0.1:0 DEPLOYSTACK_DATA_DIR="$WORK/data" \
  DEPLOYSTACK_SERVE_THREADS="$WORKERS" "$BIN" >/dev/null 2>"$WORK/server.log" &
SERVER_PID=$!
OURS=
for _ in $(seq 100); do
  OURS=$(grep -o "listening on http://[0-9.:]*" "$WORK/server.log" | head -n1 | sed 's/.*http:\/\///') || true
  [[ -n "$OURS" ]] && break
  sleep 0.1
done
[[ -n "$OURS" ]] || { echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
ID=$(curl -sf -F "file=@$WORK/site.zip" "http://$OURS/deploy" | sed 's/.*"deployment_id":"\([0-9a-f]*\)".*/\1/')
for _ in $(seq 300); do
  curl -sf "http://$OURS/api/v1/deployments/$ID" | grep -q '"status":"READY"' && break
  sleep 0.1
done
curl -sf "http://$OURS/api/v1/deployments/$ID" | grep -q '"status":"READY"' ||
  { echo "the fixture deployment did not become READY" >&2; exit 1; }

# --- nginx --------------------------------------------------------------------------------
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx"
USER_LINE=
[[ $(id -u) == 0 ]] && USER_LINE="user root;"
cat >"$WORK/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes $WORKERS;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  gzip_static on;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $SITE;
  }
}
EOF
"${SERVER_PIN[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >/dev/null 2>"$WORK/nginx/stderr.log" &
NGINX_PID=$!
for _ in $(seq 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/index.html" && break
  sleep 0.1
done

# --- Load ---------------------------------------------------------------------------------
# run URL [HEADER]: "req/s p50 p99 requests" from one run of the load generator (latencies
# in ms).
run() {
  if [[ $LOADGEN == oha ]]; then run_oha "$@"; else run_wrk "$@"; fi
}

# The same with oha: 64 connections for DURATION seconds, its JSON summary read by python3.
run_oha() {
  local url=$1 header=${2:-}
  local args=(-z "${DURATION}s" -c 64 --no-tui)
  # Newer oha spells JSON output `--output-format json`, older `--json`.
  if oha --help | grep -q -- '--output-format'; then args+=(--output-format json); else args+=(--json); fi
  # oha asks for gzip and br by default, where wrk asks for nothing: without a header of the
  # case's own, ask for the identity bytes, so both tools measure the same answers.
  args+=(-H "${header:-Accept-Encoding: identity}")
  "${WRK_PIN[@]}" oha "${args[@]}" "$url" | python3 -c '
import json, sys
r = json.load(sys.stdin)
p = r["latencyPercentiles"]
total = sum(r["statusCodeDistribution"].values())
print("%.0f %.2f %.2f %d" % (r["summary"]["requestsPerSec"], p["p50"] * 1000, p["p99"] * 1000, total))'
}

run_wrk() {
  local url=$1 header=${2:-}
  local args=(-t2 -c64 "-d${DURATION}s" --latency)
  [[ -n "$header" ]] && args+=(-H "$header")
  "${WRK_PIN[@]}" wrk "${args[@]}" "$url" | awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { total = $1 }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, total }'
}

# cpu_ticks PID...: user + system CPU time of these processes so far, in clock ticks.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    read -r -a fields < <(sed 's/^.*) //' "/proc/$pid/stat")
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# measure URL HEADER PID...: "req/s p50 p99 cpu-µs-per-request" — CPU time the server
# processes spent per request is steadier than req/s on a busy machine.
measure() {
  local url=$1 header=$2
  shift 2
  local before after rps p50 p99 total
  before=$(cpu_ticks "$@")
  read -r rps p50 p99 total < <(run "$url" "$header")
  after=$(cpu_ticks "$@")
  echo "$rps $p50 $p99 $(awk -v t=$((after - before)) -v n="$total" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')"
}

# check URL [HEADER]: status, Content-Encoding and length of one response, for the record.
check() {
  curl -s -o /dev/null -w '%{http_code} %{size_download}B' ${2:+-H "$2"} -D "$WORK/h" "$1"
  grep -i '^content-encoding' "$WORK/h" | tr -d '\r' | sed 's/^/ /' || true
}

CASES=(
  "small-page|/index.html|"
  "asset-100k|/assets/app.js|"
  "404|/no/such/file.html|"
  "asset-gzip|/assets/app.js|Accept-Encoding: gzip"
)

echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) on $(nproc) cores; $LOADGEN, ${DURATION}s per run, $ROUNDS round(s); $WORKERS serve thread(s) / nginx worker(s)${SPLIT:+, servers on CPU 0, $LOADGEN on CPU 1}"
echo "ours:  http://$OURS/$ID/  nginx: http://127.0.0.1:$NGINX_PORT/"
for case in "${CASES[@]}"; do
  IFS='|' read -r name path header <<<"$case"
  echo "  $name: ours $(check "http://$OURS/$ID$path" "$header"); nginx $(check "http://127.0.0.1:$NGINX_PORT$path" "$header")"
done
echo
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID"))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }
printf '%-11s %5s | %9s %7s %7s %7s | %9s %7s %7s %7s | %5s %5s %5s\n' \
  case round "ours rps" "p50 ms" "p99 ms" "cpu µs" "nginx rps" "p50 ms" "p99 ms" "cpu µs" \
  "rps" "p99" "cpu"
RATIOS=$WORK/ratios
for round in $(seq "$ROUNDS"); do
  for case in "${CASES[@]}"; do
    IFS='|' read -r name path header <<<"$case"
    # Who goes first alternates by round, so a machine that slows down or speeds up during
    # the run does not favour either server.
    if ((round % 2)); then
      read -r o_rps o_p50 o_p99 o_cpu < <(measure "http://$OURS/$ID$path" "$header" "$SERVER_PID")
      read -r n_rps n_p50 n_p99 n_cpu < <(measure "http://127.0.0.1:$NGINX_PORT$path" "$header" "${NGINX_PIDS[@]}")
    else
      read -r n_rps n_p50 n_p99 n_cpu < <(measure "http://127.0.0.1:$NGINX_PORT$path" "$header" "${NGINX_PIDS[@]}")
      read -r o_rps o_p50 o_p99 o_cpu < <(measure "http://$OURS/$ID$path" "$header" "$SERVER_PID")
    fi
    r_rps=$(ratio "$o_rps" "$n_rps")
    r_p99=$(ratio "$o_p99" "$n_p99")
    r_cpu=$(ratio "$o_cpu" "$n_cpu")
    echo "$name $r_rps $r_p99 $r_cpu" >>"$RATIOS"
    printf '%-11s %5s | %9s %7s %7s %7s | %9s %7s %7s %7s | %5s %5s %5s\n' \
      "$name" "$round" "$o_rps" "$o_p50" "$o_p99" "$o_cpu" "$n_rps" "$n_p50" "$n_p99" "$n_cpu" \
      "$r_rps" "$r_p99" "$r_cpu"
  done
done
echo "(ratios are ours/nginx: rps higher is better; p99 and cpu µs per request lower is better)"
if ((ROUNDS > 1)); then
  # One round's p99 ratio moves by ±25 % on this kind of machine; the median over rounds
  # is the figure to compare with the targets.
  echo
  echo "median ratio over $ROUNDS rounds (rps / p99 / cpu):"
  for case in "${CASES[@]}"; do
    name=${case%%|*}
    printf '  %-11s' "$name"
    for column in 2 3 4; do
      awk -v n="$name" -v c="$column" '$1 == n { print $c }' "$RATIOS" | sort -n |
        awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf " %5.2f", m }'
    done
    echo
  done
fi
echo
echo "server memory: peak $(awk '/^VmHWM/ { printf "%.1f MB", $2 / 1024 }' "/proc/$SERVER_PID/status")," \
  "now $(awk '/^VmRSS/ { printf "%.1f MB", $2 / 1024 }' "/proc/$SERVER_PID/status") (VmHWM / VmRSS)"
echo "nginx memory (master + workers, RSS): $(ps -o rss= --ppid "$NGINX_PID" -p "$NGINX_PID" | awk '{ s += $1 } END { printf "%.1f MB", s / 1024 }')"
echo "blob cache: $(curl -sf "http://$OURS/metrics" | grep -E '^deploystack_blob_cache_(hits|misses)_total' | tr '\n' ' ')"
