#!/usr/bin/env bash
# Side-by-side HTTP benchmarks on loopback, in one run, with one load generator (wrk):
#
#   layer:   a bare axum app vs the same app behind routing-tower's RoutingLayer,
#            in annotate mode and in dispatch mode (routing-tower/examples/bench_axum.rs,
#            without and with --layered annotate|dispatch);
#   proxies: the reverse_proxy example vs HAProxy vs nginx, each doing the same
#            weighted-random 90/10 split to the same two upstreams (bench_axum
#            instances answering "v1" / "v2"), plus wrk straight at one upstream
#            as the ceiling, and the reverse proxy's parts without the layer
#            (bench_axum --proxy-to: hyper server + HttpBackend, all to v1), each
#            with both upstream clients: the in-task h1 client (reverse_proxy's
#            default, bench_axum --client h1) and hyper-util's (--client hyper).
#
# Server CPU per request is reported whole (schedstat, ns) and split into user and
# system time (/proc/PID/stat utime/stime, clock ticks: coarser, so read it over
# runs of several seconds).
#
# Variants are measured in rounds (A B C, A B C, ...), so a noisy neighbour hits
# every variant alike; the summary gives medians and ratios to the first variant
# of each comparison, all measured in this run.
#
# Usage: benches/http/run.sh            (from anywhere; builds the examples in release)
# Knobs (environment):
#   PARTS="layer proxies"  which comparisons to run; add "h2c" for the HTTP/2 case:
#                          h2load (Debian nghttp2-client) sending gRPC-shaped POSTs
#                          (content-type application/grpc, te: trailers, a framed
#                          body) over h2c, straight to an h2c upstream vs through the
#                          reverse_proxy (layer + HttpBackend speaking h2c upstream)
#   H2_STREAMS=10          h2load -m (concurrent streams per connection), h2c part
#   PROXIES="reverse_proxy haproxy nginx"  which proxies the proxies part runs
#   REPEATS=5  DURATION=5  (seconds per measurement)  WARMUP=1 (seconds)
#   CONNS="64 1"           wrk connections; each value is its own table
#   PATHS="/ /16k"         proxies part: request paths, each its own table (the
#                          upstreams answer `/16k` with 16 KiB, anything else 2 bytes)
#   SERVER_CPU=0 LOADGEN_CPU=1 UPSTREAM_CPU=1   taskset pinning ("" = no pinning)
#   BASE_PORT=19100        ports BASE_PORT .. BASE_PORT+12 on 127.0.0.1 must be free
#   NICE=0                 nice level for servers and wrk (e.g. -10 on a machine busy with
#                          builds, so the measured processes are not preempted as often)
#   BUILD=1                0 = use the binaries already in target/release/examples
#   OUT=/dev/null          a file to write the summary to (it is always printed)
#
# Everything listens on 127.0.0.1 and is killed on exit (trap), whatever happens.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PARTS=${PARTS:-"layer proxies"}
PROXIES=${PROXIES:-"reverse_proxy haproxy nginx"}
REPEATS=${REPEATS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"64 1"}
PATHS=${PATHS:-"/ /16k"}
CLK_TCK=$(getconf CLK_TCK)
SERVER_CPU=${SERVER_CPU-0}
LOADGEN_CPU=${LOADGEN_CPU-1}
UPSTREAM_CPU=${UPSTREAM_CPU-1}
BASE_PORT=${BASE_PORT:-19100}
BUILD=${BUILD:-1}
NICE=${NICE:-0}
OUT=${OUT:-/dev/null}

H2_STREAMS=${H2_STREAMS:-10}
if [[ " $PARTS " == *" h2c "* ]]; then
    command -v h2load >/dev/null || {
        echo "missing h2load: apt-get install -y nghttp2-client" >&2
        exit 1
    }
fi
TOOLS="taskset python3"
[[ " $PARTS " != *" layer "* && " $PARTS " != *" proxies "* ]] || TOOLS+=" wrk"
[[ " $PARTS " != *" proxies "* ]] || TOOLS+=" haproxy nginx"
for tool in $TOOLS; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool: apt-get install -y wrk haproxy nginx util-linux python3" >&2
        exit 1
    }
done

TMP=$(mktemp -d /tmp/http-bench.XXXXXX)
PIDS=()
declare -A PID_OF # variant name -> server pid, for CPU time per request
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded wait: SIGKILL whatever is still there after ~2 s.
        for _ in $(seq 1 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin() { # pin CPU CMD...: run CMD pinned to CPU (or unpinned when CPU is empty)
    local cpu=$1
    shift
    if [[ -n "$cpu" ]]; then nice -n "$NICE" taskset -c "$cpu" "$@"; else nice -n "$NICE" "$@"; fi
}

start() { # start NAME CPU CMD...: start CMD in the background, log to $TMP/NAME.log
    local name=$1 cpu=$2
    shift 2
    # No function or subshell in between: $! must be the server itself, for the trap.
    if [[ -n "$cpu" ]]; then
        nice -n "$NICE" taskset -c "$cpu" "$@" >"$TMP/$name.log" 2>&1 &
    else
        nice -n "$NICE" "$@" >"$TMP/$name.log" 2>&1 &
    fi
    PIDS+=($!)
    LAST_PID=$!
}

cpu_ns() { # cpu_ns PID: CPU time (ns) of PID, its threads and its children's (nginx workers)
    local pid=$1 total=0 p f
    for p in "$pid" $(pgrep -P "$pid" || true); do
        for f in /proc/"$p"/task/*/schedstat; do
            [[ -r "$f" ]] && total=$((total + $(cut -d' ' -f1 "$f" 2>/dev/null || echo 0)))
        done
    done
    echo "$total"
}

cpu_ticks() { # cpu_ticks PID: "utime stime" (clock ticks) of PID (all threads) and its children
    local pid=$1 ut=0 st=0 p f
    for p in "$pid" $(pgrep -P "$pid" || true); do
        f=/proc/$p/stat
        [[ -r "$f" ]] || continue
        # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
        read -r u s2 < <(sed 's/^.*) //' "$f" | awk '{print $12, $13}')
        ut=$((ut + u))
        st=$((st + s2))
    done
    echo "$ut $st"
}

wait_port() { # wait_port PORT: up to 10 s for 127.0.0.1:PORT to accept
    local port=$1
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port after 10 s; logs:" >&2
    tail -n 20 "$TMP"/*.log >&2 || true
    exit 1
}

for i in $(seq 0 14); do
    if ss -ltnH "sport = :$((BASE_PORT + i))" | grep -q .; then
        echo "127.0.0.1:$((BASE_PORT + i)) is taken; set BASE_PORT" >&2
        exit 1
    fi
done
P_UP1=$BASE_PORT P_UP2=$((BASE_PORT + 1))
P_BARE=$((BASE_PORT + 2)) P_ANNOTATE=$((BASE_PORT + 3)) P_DISPATCH=$((BASE_PORT + 7))
P_RPROXY=$((BASE_PORT + 4)) P_HAPROXY=$((BASE_PORT + 5)) P_NGINX=$((BASE_PORT + 6))
P_CLIENT=$((BASE_PORT + 8))
P_RPROXY_HYPER=$((BASE_PORT + 13)) P_CLIENT_H1=$((BASE_PORT + 14))
P_H2UP1=$((BASE_PORT + 9)) P_H2UP2=$((BASE_PORT + 10)) P_H2PROXY=$((BASE_PORT + 11)) P_H2SPARE=$((BASE_PORT + 12))

echo "== building examples (release)" >&2
EXAMPLES=(--example bench_axum)
if [[ " $PARTS " == *" h2c "* || (" $PARTS " == *" proxies "* && " $PROXIES " == *" reverse_proxy "*) ]]; then
    EXAMPLES+=(--example reverse_proxy)
fi
if [[ "$BUILD" != 0 ]]; then
    (cd "$ROOT" && cargo build --release -q -p routing-tower "${EXAMPLES[@]}")
fi
EX=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples

RESULTS=$TMP/results.tsv
: >"$RESULTS"

measure() { # measure PART CONNS NAME URL [record]: one wrk run, appended to $RESULTS
    local part=$1 conns=$2 name=$3 url=$4 secs=${5:-$DURATION} record=${6:-yes}
    local log=$TMP/wrk.out pid=${PID_OF[$name]:-} cpu0=0 cpu1=0 t0="0 0" t1="0 0"
    [[ -z "$pid" ]] || { cpu0=$(cpu_ns "$pid"); t0=$(cpu_ticks "$pid"); }
    pin "$LOADGEN_CPU" wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s --latency "$url" >"$log" 2>&1 || {
        cat "$log" >&2
        exit 1
    }
    [[ -z "$pid" ]] || { cpu1=$(cpu_ns "$pid"); t1=$(cpu_ticks "$pid"); }
    [[ "$record" == yes ]] || return 0
    local ut=$(( ${t1% *} - ${t0% *} )) st=$(( ${t1#* } - ${t0#* } ))
    python3 - "$log" "$part" "$conns" "$name" "$((cpu1 - cpu0))" "$ut" "$st" "$CLK_TCK" >>"$RESULTS" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def us(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6}[m[2]]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
p50 = us(re.search(r"^\s+50%\s+(\S+)", text, re.M)[1])
p99 = us(re.search(r"^\s+99%\s+(\S+)", text, re.M)[1])
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
bad = int(m[1]) if m else 0
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
bad += sum(map(int, m.groups())) if m else 0
n = int(re.search(r"(\d+) requests in", text)[1])
cpu_us = int(sys.argv[5]) / 1e3 / n if n and int(sys.argv[5]) > 0 else float("nan")
tick_us = 1e6 / int(sys.argv[8])
have = n and int(sys.argv[5]) > 0
user_us = int(sys.argv[6]) * tick_us / n if have else float("nan")
sys_us = int(sys.argv[7]) * tick_us / n if have else float("nan")
print("\t".join(map(str, [sys.argv[2], sys.argv[3], sys.argv[4], rps, p50, p99, bad, cpu_us, user_us, sys_us])))
EOF
}

rounds() { # rounds PART NAME=URL...: warm each up, then REPEATS rounds over all of them
    local part=$1
    shift
    local conns pair
    for conns in $CONNS; do
        for pair in "$@"; do measure "$part" "$conns" "${pair%%=*}" "${pair#*=}" "$WARMUP" no; done
        for r in $(seq 1 "$REPEATS"); do
            for pair in "$@"; do
                echo "  [$part c=$conns round $r/$REPEATS] ${pair%%=*}" >&2
                measure "$part" "$conns" "${pair%%=*}" "${pair#*=}"
            done
        done
    done
}

rounds_paths() { # rounds_paths PART NAME=BASEURL...: rounds once per path of $PATHS
    local part=$1 path pair
    shift
    for path in $PATHS; do
        local with=()
        for pair in "$@"; do with+=("${pair%%=*}=${pair#*=}${path#/}"); done
        rounds "$part $path" "${with[@]}"
    done
}

check_split() { # check_split NAME PORT: 1000 requests on one connection, print the v1/v2 split
    local name=$1 port=$2 urls=() body
    for _ in $(seq 1 1000); do urls+=("http://127.0.0.1:$port/split"); done
    body=$(curl -s --max-time 20 "${urls[@]}")
    echo "split through $name: v1=$(grep -o v1 <<<"$body" | wc -l) v2=$(grep -o v2 <<<"$body" | wc -l) of 1000" >&2
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

if [[ " $PARTS " == *" layer "* ]]; then
    echo "== layer: bare axum vs axum + RoutingLayer" >&2
    start bare "$SERVER_CPU" "$EX/bench_axum" --listen "127.0.0.1:$P_BARE" --threads 1 --body hello
    PID_OF["axum bare"]=$LAST_PID
    start annotate "$SERVER_CPU" "$EX/bench_axum" --listen "127.0.0.1:$P_ANNOTATE" --threads 1 --body hello --layered annotate
    PID_OF["axum + RoutingLayer, annotate"]=$LAST_PID
    start dispatch "$SERVER_CPU" "$EX/bench_axum" --listen "127.0.0.1:$P_DISPATCH" --threads 1 --body hello --layered dispatch
    PID_OF["axum + RoutingLayer, dispatch to 2 in-process clones"]=$LAST_PID
    wait_port "$P_BARE"
    wait_port "$P_ANNOTATE"
    wait_port "$P_DISPATCH"
    rounds layer "axum bare=http://127.0.0.1:$P_BARE/" \
        "axum + RoutingLayer, annotate=http://127.0.0.1:$P_ANNOTATE/" \
        "axum + RoutingLayer, dispatch to 2 in-process clones=http://127.0.0.1:$P_DISPATCH/"
fi

if [[ " $PARTS " == *" proxies "* ]]; then
    echo "== proxies: reverse_proxy vs HAProxy vs nginx, 90/10 to two upstreams" >&2
    start up1 "$UPSTREAM_CPU" "$EX/bench_axum" --listen "127.0.0.1:$P_UP1" --threads 1 --body v1
    PID_OF["upstream direct (no proxy)"]=$LAST_PID
    start up2 "$UPSTREAM_CPU" "$EX/bench_axum" --listen "127.0.0.1:$P_UP2" --threads 1 --body v2
    wait_port "$P_UP1"
    wait_port "$P_UP2"

    cat >"$TMP/routes.yaml" <<EOF
backends:
  - { name: v1, address: "127.0.0.1:$P_UP1" }
  - { name: v2, address: "127.0.0.1:$P_UP2" }
routes:
  - name: all
    rules:
      - backends:
          - { name: v1, weight: 90 }
          - { name: v2, weight: 10 }
EOF
    if [[ " $PROXIES " == *" reverse_proxy "* ]]; then
        start reverse_proxy "$SERVER_CPU" "$EX/reverse_proxy" --config "$TMP/routes.yaml" \
            --listen "127.0.0.1:$P_RPROXY" --threads 1
        PID_OF[reverse_proxy]=$LAST_PID
        start reverse_proxy_hyper "$SERVER_CPU" "$EX/reverse_proxy" --config "$TMP/routes.yaml" \
            --listen "127.0.0.1:$P_RPROXY_HYPER" --threads 1 --client hyper
        PID_OF["reverse_proxy, hyper-util client"]=$LAST_PID
        # The client's share: the same hyper server and a client, no layer, all to v1.
        start client_only "$SERVER_CPU" "$EX/bench_axum" --listen "127.0.0.1:$P_CLIENT" --threads 1 \
            --proxy-to "127.0.0.1:$P_UP1" --client hyper
        PID_OF["hyper + HttpBackend only (no layer, all to v1)"]=$LAST_PID
        start client_only_h1 "$SERVER_CPU" "$EX/bench_axum" --listen "127.0.0.1:$P_CLIENT_H1" --threads 1 \
            --proxy-to "127.0.0.1:$P_UP1" --client h1
        PID_OF["hyper + H1Backend only (no layer, all to v1)"]=$LAST_PID
    fi
    if [[ " $PROXIES " == *" haproxy "* ]]; then
        cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:$P_HAPROXY
    default_backend be
backend be
    balance random
    server v1 127.0.0.1:$P_UP1 weight 90
    server v2 127.0.0.1:$P_UP2 weight 10
EOF
        start haproxy "$SERVER_CPU" haproxy -db -f "$TMP/haproxy.cfg"
        PID_OF[haproxy]=$LAST_PID
    fi
    if [[ " $PROXIES " == *" nginx "* ]]; then
        mkdir -p "$TMP/nginx"
        cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    upstream be {
        random;
        server 127.0.0.1:$P_UP1 weight=90;
        server 127.0.0.1:$P_UP2 weight=10;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
        start nginx "$SERVER_CPU" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"
        PID_OF[nginx]=$LAST_PID
    fi
    VARIANTS=()
    for proxy in $PROXIES; do
        case $proxy in
            reverse_proxy) port=$P_RPROXY ;;
            haproxy) port=$P_HAPROXY ;;
            nginx) port=$P_NGINX ;;
            *) echo "unknown proxy $proxy" >&2; exit 1 ;;
        esac
        wait_port "$port"
        check_split "$proxy" "$port"
        VARIANTS+=("$proxy=http://127.0.0.1:$port/")
        if [[ $proxy == reverse_proxy ]]; then
            wait_port "$P_RPROXY_HYPER"
            check_split "reverse_proxy --client hyper" "$P_RPROXY_HYPER"
            VARIANTS+=("reverse_proxy, hyper-util client=http://127.0.0.1:$P_RPROXY_HYPER/")
            wait_port "$P_CLIENT"
            wait_port "$P_CLIENT_H1"
            VARIANTS+=("hyper + H1Backend only (no layer, all to v1)=http://127.0.0.1:$P_CLIENT_H1/")
            VARIANTS+=("hyper + HttpBackend only (no layer, all to v1)=http://127.0.0.1:$P_CLIENT/")
        fi
    done
    VARIANTS+=("upstream direct (no proxy)=http://127.0.0.1:$P_UP1/")
    rounds_paths proxies "${VARIANTS[@]}"
fi

H2RESULTS=$TMP/h2.tsv
: >"$H2RESULTS"
if [[ " $PARTS " == *" h2c "* ]]; then
    echo "== h2c: gRPC-shaped HTTP/2 straight to an h2c upstream vs through reverse_proxy" >&2
    cat >"$TMP/h2c.yaml" <<EOF
backends:
  - {name: v1, address: "127.0.0.1:$P_H2UP1"}
  - {name: v2, address: "127.0.0.1:$P_H2UP2"}
routes:
  - name: grpc
    rules:
      - backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
EOF
    # The upstreams: a reverse_proxy process that only hosts --spawn-upstreams (h1 + h2c).
    start h2up "$UPSTREAM_CPU" "$EX/reverse_proxy" --config "$TMP/h2c.yaml" --listen "127.0.0.1:$P_H2SPARE" --spawn-upstreams --threads 1
    # The proxy under test: layer + HttpBackend speaking h2c to both upstreams.
    start h2proxy "$SERVER_CPU" "$EX/reverse_proxy" --config "$TMP/h2c.yaml" --listen "127.0.0.1:$P_H2PROXY" --upstream v1=h2c --upstream v2=h2c --threads 1
    H2PROXY_PID=$LAST_PID
    wait_port "$P_H2UP1"
    wait_port "$P_H2PROXY"
    # One gRPC message: the 5-byte frame header and 16 bytes.
    printf '\x00\x00\x00\x00\x10aaaaaaaaaaaaaaaa' >"$TMP/grpc.bin"
    h2measure() { # h2measure NAME URL PID CONNS [record]
        local name=$1 url=$2 pid=$3 conns=$4 record=${5:-yes} log=$TMP/h2load.out cpu0=0 cpu1=0
        [[ -z "$pid" ]] || cpu0=$(cpu_ns "$pid")
        pin "$LOADGEN_CPU" h2load -t1 -c"$conns" -m"$H2_STREAMS" -D "$DURATION" -d "$TMP/grpc.bin" \
            -H 'content-type: application/grpc' -H 'te: trailers' "$url" >"$log" 2>&1 || {
            cat "$log" >&2
            exit 1
        }
        [[ -z "$pid" ]] || cpu1=$(cpu_ns "$pid")
        [[ "$record" == yes ]] || return 0
        python3 - "$log" "$conns" "$name" "$((cpu1 - cpu0))" >>"$H2RESULTS" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def us(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6}[m[2]]
rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)[1])
m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
done, ok, failed, errored = map(int, m.groups())
m = re.search(r"status codes: (\d+) 2xx", text)
bad = failed + errored + (done - int(m[1]) if m else 0)
lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
mean = us(lat[3])
cpu_us = int(sys.argv[4]) / 1e3 / done if done and int(sys.argv[4]) > 0 else float("nan")
print("\t".join(map(str, [sys.argv[2], sys.argv[3], rps, mean, bad, cpu_us])))
EOF
    }
    DIRECT="h2c upstream direct (no layer)=http://127.0.0.1:$P_H2UP1/grpc.Echo/Call"
    PROXIED="reverse_proxy (layer, h2c upstream)=http://127.0.0.1:$P_H2PROXY/grpc.Echo/Call"
    for conns in $CONNS; do
        h2measure "${DIRECT%%=*}" "${DIRECT#*=}" "" "$conns" no
        h2measure "${PROXIED%%=*}" "${PROXIED#*=}" "$H2PROXY_PID" "$conns" no
        for r in $(seq 1 "$REPEATS"); do
            echo "  [h2c c=$conns round $r/$REPEATS]" >&2
            h2measure "${DIRECT%%=*}" "${DIRECT#*=}" "" "$conns"
            h2measure "${PROXIED%%=*}" "${PROXIED#*=}" "$H2PROXY_PID" "$conns"
        done
    done
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

{
    echo "# HTTP side-by-side run, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    if [[ " $PARTS " == *" proxies "* ]]; then
        echo "- wrk: $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); $(haproxy -v | head -n 1 | cut -d' ' -f1-3); $(nginx -v 2>&1)"
    fi
    echo "- $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); load average before: $LOAD_BEFORE, after: $LOAD_AFTER"
    echo "- server CPU: ${SERVER_CPU:-unpinned}, wrk CPU: ${LOADGEN_CPU:-unpinned}, upstreams CPU: ${UPSTREAM_CPU:-unpinned}, nice $NICE; wrk -t1 -c{$CONNS} -d${DURATION}s, $REPEATS rounds, variants alternated"
    echo
    python3 - "$RESULTS" <<'EOF'
import statistics, sys
from collections import OrderedDict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
groups = OrderedDict()
for part, conns, name, rps, p50, p99, bad, cpu, ucpu, scpu in rows:
    groups.setdefault((part, conns), OrderedDict()).setdefault(name, []).append(
        (float(rps), float(p50), float(p99), int(bad), float(cpu), float(ucpu), float(scpu)))
for (part, conns), variants in groups.items():
    print(f"## {part}, {conns} connection{'s' if conns != '1' else ''}\n")
    print("| variant | req/s (median) | vs first | p50 µs | p99 µs (median) | p99 Δ vs first | server CPU µs/req | CPU vs first | user µs/req | sys µs/req | runs (req/s) | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    base = None
    for name, runs in variants.items():
        rps = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        bad = sum(r[3] for r in runs)
        cpus = [r[4] for r in runs if r[4] == r[4]]
        cpu_m = statistics.median(cpus) if cpus else float("nan")
        cpu = f"{cpu_m:.1f}" if cpus else "–"
        ucpus = [r[5] for r in runs if r[5] == r[5]]
        scpus = [r[6] for r in runs if r[6] == r[6]]
        ucpu = f"{statistics.median(ucpus):.1f}" if ucpus else "–"
        scpu = f"{statistics.median(scpus):.1f}" if scpus else "–"
        if base is None:
            base = (rps, p99, cpu_m)
        ratio = f"{rps / base[0]:.3f}"
        delta = f"{p99 - base[1]:+.0f}"
        cratio = f"{cpu_m / base[2]:.3f}" if cpus and base[2] == base[2] else "–"
        each = ", ".join(f"{r[0]:.0f}" for r in runs)
        print(f"| {name} | {rps:.0f} | {ratio} | {p50:.0f} | {p99:.0f} | {delta} | {cpu} | {cratio} | {ucpu} | {scpu} | {each} | {bad} |")
    print()
EOF
    if [[ -s "$H2RESULTS" ]]; then
        echo "## h2c, gRPC-shaped POSTs ($(h2load --version 2>&1 | head -n 1); h2load -t1 -m$H2_STREAMS -D$DURATION)"
        echo
        python3 - "$H2RESULTS" <<'EOF'
import statistics, sys
from collections import OrderedDict
groups = OrderedDict()
for line in open(sys.argv[1]):
    conns, name, rps, mean, bad, cpu = line.rstrip("\n").split("\t")
    groups.setdefault(conns, OrderedDict()).setdefault(name, []).append((float(rps), float(mean), int(bad), float(cpu)))
for conns, variants in groups.items():
    print(f"### h2load -c{conns}")
    print()
    print("| variant | median req/s | ratio | median mean latency (us) | server CPU us/req | runs (req/s) | non-2xx/errors |")
    print("|---|---|---|---|---|---|---|")
    base = None
    for name, runs in variants.items():
        rps = statistics.median(r[0] for r in runs)
        base = base or rps
        lat = statistics.median(r[1] for r in runs)
        cpus = [r[3] for r in runs if r[3] == r[3]]
        cpu = f"{statistics.median(cpus):.1f}" if cpus else "-"
        each = ", ".join(f"{r[0]:.0f}" for r in runs)
        print(f"| {name} | {rps:.0f} | {rps / base:.2f} | {lat:.0f} | {cpu} | {each} | {sum(r[2] for r in runs)} |")
    print()
EOF
    fi
} | tee "$OUT"
