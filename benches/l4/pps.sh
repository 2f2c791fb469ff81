#!/usr/bin/env bash
# Packet-rate comparison of L4 load balancers on one 2-core machine (issue 14).
#
#   benches/l4/pps.sh [--secs S] [--flows N] [--routing PATH] [--perf DIR]
#
# --perf DIR: also `perf record -C 1` each counted run into DIR/<side>-<load>.data
# (where the load balancer's CPU time goes: `perf report -i FILE --sort symbol`).
#
# A packet generator (trafgen, Debian's netsniff-ng) pinned to CPU 0 sends TCP to
# a VIP through a load-balancer namespace whose receive work runs on CPU 1; the
# rewritten packets are counted and dropped at a sink (an nftables netdev-ingress
# `counter drop` on the sink's veth; GRO on there so that XDP_REDIRECT reaches it).
# Sides, one after the other in the same run:
#
#   xdp-drv   the routing-ebpf XDP program, native mode on the veth (`routing run`)
#   xdp-skb   the same program, generic mode
#   nft       nftables DNAT (prerouting `dnat to` the one target, conntrack)
#   ipvs      IPVS NAT (ipvsadm), when the kernel has it (CONFIG_IP_VS)
#
# and two loads per side, in this order: established traffic (ACKs cycling over N
# flows; the warm-up second creates their state: the XDP flow cache, conntrack
# entries by loose pick-up) and a SYN flood (a random source port and sequence
# number on every packet; it fills the conntrack table, which is why it comes
# second: an ACK meeting a flood entry in SYN_SENT is invalid and not NATed).
#
# Reported per side and load: Mpps delivered at the sink; ns of CPU per delivered
# packet on the load balancer's CPU — the CPU time of the threaded-NAPI kernel
# threads of l0 (the load balancer's receive path: XDP, the stack, nftables) and
# of s0 (the sink's drop, the same for every side), both pinned to CPU 1, plus
# ksoftirqd/1 (tick-based accounting: ±1 tick per thread and run); and for XDP
# the program's own run time per packet from kernel.bpf_stats_enabled (bpftool
# prog show: run_time_ns / run_cnt, over the counted run).
#
# Topology (namespaces created here, deleted on exit, also on failure or Ctrl-C):
#   gen  g0 198.51.100.2 ── l0 198.51.100.1  lb  l1 203.0.113.1 ── s0 203.0.113.10  sink
# VIP 192.0.2.1:80 → target 203.0.113.10:8080 (the sink). Every trafgen run is
# bounded by `timeout`; traffic only enters the namespaces created here.
#
# Needs root, iproute2, ethtool, nftables, netsniff-ng (trafgen) and bpftool
# (`cargo xtask setup` installs them), ipvsadm for IPVS, and the `routing` binary
# with the XDP loader: cargo build --release -p routing-cli --features xdp
#
# trafgen sends from a TX ring and gives up when its socket's send buffer is full
# (EAGAIN), which happens as soon as the load balancer is slower than the
# generator; inside a network namespace it cannot raise the buffer itself (the
# net.core.wmem_* sysctls are global). The script raises net.core.wmem_default
# (and wmem_max if lower) to 4 MiB for the run — what trafgen does itself when
# run in the initial namespace — and restores both on exit.
set -euo pipefail

SECS=5
FLOWS=1000
ROUTING=""
PERF=""
while [ $# -gt 0 ]; do
    case "$1" in
    --secs) SECS="$2"; shift 2 ;;
    --flows) FLOWS="$2"; shift 2 ;;
    --routing) ROUTING="$2"; shift 2 ;;
    --perf) PERF="$2"; shift 2 ;;
    *) echo "usage: $0 [--secs S] [--flows N] [--routing PATH] [--perf DIR]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "pps.sh: needs root" >&2; exit 1; }
for c in ip ethtool nft trafgen bpftool taskset timeout; do
    command -v "$c" >/dev/null || { echo "pps.sh: missing $c (run cargo xtask setup)" >&2; exit 1; }
done
if [ -z "$ROUTING" ]; then
    ROUTING="${CARGO_TARGET_DIR:-$(dirname "$0")/../../target}/release/routing"
fi
[ -x "$ROUTING" ] || {
    echo "pps.sh: no routing binary at $ROUTING (cargo build --release -p routing-cli --features xdp, or --routing PATH)" >&2
    exit 1
}
[ "$(nproc)" -ge 2 ] || { echo "pps.sh: needs 2 CPUs" >&2; exit 1; }

P="pps$$"
GEN="${P}gen" LB="${P}lb" SINK="${P}sink"
WORK="$(mktemp -d)"
LB_PID=""
OLD_WMEM_DEFAULT=$(sysctl -n net.core.wmem_default)
OLD_WMEM_MAX=$(sysctl -n net.core.wmem_max)
OLD_STATS=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
    set +e
    [ -n "$LB_PID" ] && kill "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null
    for n in "$GEN" "$LB" "$SINK"; do ip netns del "$n" 2>/dev/null; done
    sysctl -qw net.core.wmem_default="$OLD_WMEM_DEFAULT" net.core.wmem_max="$OLD_WMEM_MAX" \
        kernel.bpf_stats_enabled="$OLD_STATS"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
sysctl -qw net.core.wmem_default=4194304
[ "$OLD_WMEM_MAX" -ge 4194304 ] || sysctl -qw net.core.wmem_max=4194304

ip netns add "$GEN"
ip netns add "$LB"
ip netns add "$SINK"
ip -n "$GEN" link add g0 type veth peer name l0 netns "$LB"
ip -n "$LB" link add l1 type veth peer name s0 netns "$SINK"
ip -n "$GEN" addr add 198.51.100.2/24 dev g0
ip -n "$LB" addr add 198.51.100.1/24 dev l0
ip -n "$LB" addr add 203.0.113.1/24 dev l1
ip -n "$SINK" addr add 203.0.113.10/24 dev s0
for x in "$GEN lo" "$GEN g0" "$LB lo" "$LB l0" "$LB l1" "$SINK lo" "$SINK s0"; do
    # shellcheck disable=SC2086
    set -- $x
    ip -n "$1" link set "$2" up
done
mac() { ip -n "$1" -br link show "$2" | awk '{print $3}'; }
G0=$(mac "$GEN" g0)
L0=$(mac "$LB" l0)
S0=$(mac "$SINK" s0)
ip netns exec "$LB" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
    net.ipv4.conf.l0.rp_filter=0 net.ipv4.conf.all.send_redirects=0
ip -n "$LB" neigh replace 203.0.113.10 lladdr "$S0" dev l1 nud permanent
ip -n "$LB" neigh replace 198.51.100.2 lladdr "$G0" dev l0 nud permanent
# trafgen computes its checksums.
ip netns exec "$GEN" ethtool -K g0 tx off >/dev/null 2>&1 || true

# The sink: count and drop at the netdev ingress hook.
ip netns exec "$SINK" nft -f - <<NFT
table netdev sink {
  chain in {
    type filter hook ingress device s0 priority 0;
    counter drop
  }
}
NFT
# Receive paths in NAPI kernel threads on CPU 1: GRO on (a veth uses NAPI then,
# also without XDP, and accepts XDP_REDIRECT), threaded NAPI, the threads pinned.
for x in "$LB l0" "$SINK s0"; do
    # shellcheck disable=SC2086
    set -- $x
    ip netns exec "$1" ethtool -K "$2" gro on >/dev/null
    ip netns exec "$1" sh -c "echo 1 > /sys/class/net/$2/threaded"
done
# The NAPI threads of l0 and s0 (new ones when XDP is attached) and ksoftirqd/1,
# pinned to CPU 1; prints their pids.
lb_threads() {
    local pids p
    pids=$(ps -eo pid,comm | awk '$2 ~ /^napi\/(l0|s0)-/ || $2 == "ksoftirqd/1" {print $1}')
    for p in $pids; do taskset -pc 1 "$p" >/dev/null 2>&1 || true; done
    echo "$pids"
}
sink_count() {
    ip netns exec "$SINK" nft list table netdev sink | awk '/counter packets/ {print $3}'
}
cpu_ticks() { # utime + stime of the given threads, in clock ticks
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
HZ=$(getconf CLK_TCK)

# trafgen configurations.
cat >"$WORK/syn.cfg" <<CFG
{
  eth(da=$L0, sa=$G0, type=0x0800),
  ipv4(saddr=198.51.100.2, daddr=192.0.2.1, ttl=64, df),
  tcp(sp=drnd(), dp=80, seq=drnd(), syn, window=64240)
}
CFG
cat >"$WORK/est.cfg" <<CFG
{
  eth(da=$L0, sa=$G0, type=0x0800),
  ipv4(saddr=198.51.100.2, daddr=192.0.2.1, ttl=64, df),
  tcp(sp=dinc(10000, $((10000 + FLOWS - 1)), 1), dp=80, seq=1000, ackseq=2000, ack, window=64240)
}
CFG

side_up() {
    case "$1" in
    xdp-drv | xdp-skb)
        local mode=drv
        [ "$1" = xdp-skb ] && mode=skb
        cat >"$WORK/lb.yaml" <<YAML
backends: [{name: sink, address: '203.0.113.10:8080'}]
tcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: sink}]}]
YAML
        ip netns exec "$LB" "$ROUTING" run --iface l0 --config "$WORK/lb.yaml" --mode "$mode" \
            >"$WORK/lb.log" 2>&1 &
        LB_PID=$!
        sleep 2
        kill -0 "$LB_PID" 2>/dev/null || { cat "$WORK/lb.log" >&2; exit 1; }
        ;;
    nft)
        ip netns exec "$LB" nft -f - <<NFT
table ip pps {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr 192.0.2.1 tcp dport 80 dnat to 203.0.113.10:8080
  }
}
NFT
        ;;
    ipvs)
        ip -n "$LB" addr add 192.0.2.1/32 dev lo
        ip netns exec "$LB" ipvsadm -A -t 192.0.2.1:80 -s rr
        ip netns exec "$LB" ipvsadm -a -t 192.0.2.1:80 -r 203.0.113.10:8080 -m
        ;;
    esac
}
side_down() {
    case "$1" in
    xdp-*)
        kill "$LB_PID"
        wait "$LB_PID" 2>/dev/null || true
        LB_PID=""
        ;;
    nft) ip netns exec "$LB" nft delete table ip pps ;;
    ipvs)
        ip netns exec "$LB" ipvsadm -C
        ip -n "$LB" addr del 192.0.2.1/32 dev lo
        ;;
    esac
}

prog_stats() { # "run_cnt run_time_ns" of the XDP program on l0 (0 0 without one)
    local id
    id=$(ip netns exec "$LB" bpftool -j net show dev l0 | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2 || true)
    if [ -z "$id" ]; then
        echo "0 0"
        return
    fi
    bpftool -j prog show id "$id" | grep -o '"run_time_ns":[0-9]*\|"run_cnt":[0-9]*' |
        awk -F: '/run_cnt/ {c = $2} /run_time_ns/ {t = $2} END {print c + 0, t + 0}'
}

trafgen_for() { # seconds config
    ip netns exec "$GEN" timeout -s INT "$1" taskset -c 0 trafgen -i "$2" -o g0 -P 1 -C \
        >/dev/null 2>&1 || true
}

# One measurement of load $1 on side $2: prints "Mpps ns/pkt bpf-ns/pkt".
measure() {
    local cfg="$WORK/$1.cfg" perf_pid="" threads s0 c0 b0 t0 s1 c1 b1 t1 bc0 bt0 bc1 bt1
    threads=$(lb_threads)
    trafgen_for 1 "$cfg" # warm-up (and the established flows' state)
    # shellcheck disable=SC2086
    s0=$(sink_count) c0=$(cpu_ticks $threads)
    read -r bc0 bt0 < <(prog_stats)
    if [ -n "$PERF" ]; then
        mkdir -p "$PERF"
        perf record -q -C 1 -o "$PERF/$2-$1.data" -- sleep "$SECS" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    t0=$(date +%s%N)
    trafgen_for "$SECS" "$cfg"
    t1=$(date +%s%N)
    [ -z "$perf_pid" ] || wait "$perf_pid" || true
    sleep 0.2
    # shellcheck disable=SC2086
    s1=$(sink_count) c1=$(cpu_ticks $threads)
    read -r bc1 bt1 < <(prog_stats)
    awk -v n=$((s1 - s0)) -v dt=$((t1 - t0)) -v cpu=$((c1 - c0)) -v hz="$HZ" \
        -v bc=$((bc1 - bc0)) -v bt=$((bt1 - bt0)) 'BEGIN {
        mpps = n / (dt / 1e9) / 1e6
        ns = n > 0 ? cpu * 1e9 / hz / n : 0
        printf "%.3f %.0f %s\n", mpps, ns, (bc > 0 ? sprintf("%.0f", bt / bc) : "-")
    }'
}

SIDES="xdp-drv xdp-skb nft"
if command -v ipvsadm >/dev/null && ip netns exec "$LB" ipvsadm -Ln >/dev/null 2>&1; then
    SIDES="$SIDES ipvs"
else
    echo "# ipvs: not measured (no IPVS in this kernel — CONFIG_IP_VS is not set — or no ipvsadm)"
fi
sysctl -qw kernel.bpf_stats_enabled=1
echo "# $(date -u +%FT%TZ) Linux $(uname -r), ${SECS} s per run, ${FLOWS} established flows," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| side | load | Mpps at the sink | ns CPU / packet (CPU 1) | XDP program ns / packet (bpf_stats) |"
echo "|---|---|---:|---:|---:|"
for side in $SIDES; do
    side_up "$side"
    for load in est syn; do
        read -r mpps ns bns < <(measure "$load" "$side")
        name="SYN flood"
        [ "$load" = est ] && name="established ($FLOWS flows)"
        echo "| $side | $name | $mpps | $ns | $bns |"
    done
    side_down "$side"
done
