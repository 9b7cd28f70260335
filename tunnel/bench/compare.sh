#!/usr/bin/env bash
# espgcm-tunnel beside boringtun (userspace WireGuard) and the bare veth:
# iperf3 with one TCP stream (`tcp`), and 64-byte UDP datagrams per second
# from iperf3 (`udp64`) and from the tunnel crate's `udp_pps` example, one
# datagram per system call (`udp64one`) or 64 per UDP GSO send (`udp64gso`),
# counted by its GRO receiver, through each path in turn, in the same two
# network namespaces, in interleaved rounds. A benchmark, not a test: run it
# on a quiet machine, as root.
#
#   tunnel/bench/compare.sh              # 3 rounds of 5 s per path and load
#   ROUNDS=5 SECS=10 tunnel/bench/compare.sh
#   KINDS="tcp udp64gso" tunnel/bench/compare.sh
#
# It installs what it needs: iperf3 and wireguard-tools (Debian), and
# boringtun-cli with `cargo install` into a scratch folder ($SCRATCH,
# default /tmp/espgcm-bench), never into the repository. Addresses are from
# the documentation ranges and exist only inside the namespaces it makes;
# everything is taken down on exit.
#
# Besides throughput it reports how the tunnel workers' time divides between
# the cipher (seal/open calls) and the system calls (TUN and socket I/O,
# which include the kernel's own processing of what they hand over), from
# the workers' own counters on the control socket.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
SCRATCH=${SCRATCH:-/tmp/espgcm-bench}
WORK=$(mktemp -d /tmp/espgcm-bench-run.XXXXXX)
NSA="egb$$a"
NSB="egb$$b"
PIDS=()

if [ "$(id -u)" -ne 0 ]; then
    echo "compare.sh: needs root (network namespaces, TUN devices)" >&2
    exit 1
fi

cleanup() {
    # iperf3 -D left the process tree: it is ended by its own pid file.
    if [ -s "$WORK/iperf3.pid" ]; then PIDS+=("$(cat "$WORK/iperf3.pid")"); fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NSA" 2>/dev/null || true
    ip netns del "$NSB" 2>/dev/null || true
    rm -f /var/run/wireguard/wga.sock /var/run/wireguard/wgb.sock
    rm -rf "$WORK"
}
trap cleanup EXIT

need_apt() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "compare.sh: installing $2 (Debian)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    fi
}
need_apt iperf3 iperf3
need_apt wg wireguard-tools
need_apt python3 python3

BORINGTUN="$SCRATCH/boringtun/bin/boringtun-cli"
if [ ! -x "$BORINGTUN" ]; then
    echo "compare.sh: cargo install boringtun-cli into $SCRATCH (a few minutes, once)"
    mkdir -p "$SCRATCH"
    CARGO_TARGET_DIR="$SCRATCH/target" cargo install --quiet boringtun-cli --root "$SCRATCH/boringtun"
fi
echo "compare.sh: building espgcm-tunnel and its udp_pps load (release)"
cargo build --release --quiet -p espgcm-tunnel
cargo build --release --quiet -p espgcm-tunnel --example udp_pps
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TUNNEL="$TARGET_DIR/release/espgcm-tunnel"
UDP_PPS="$TARGET_DIR/release/examples/udp_pps"

# The namespaces and the veth between them (the bare path).
ip netns add "$NSA"
ip netns add "$NSB"
ip link add va netns "$NSA" type veth peer name vb netns "$NSB"
ip -n "$NSA" addr add 192.0.2.1/24 dev va
ip -n "$NSB" addr add 192.0.2.2/24 dev vb
for ns in "$NSA" "$NSB"; do
    ip -n "$ns" link set lo up
done
ip -n "$NSA" link set va up
ip -n "$NSB" link set vb up

# espgcm-tunnel: tunnel mode, ESP in UDP, AES-128-GCM, one worker per core
# (the library's SA file format, and the tunnel's [tunnel] table).
KEY_A=000102030405060708090a0b0c0d0e0f10111213
KEY_B=a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3
espgcm_config() { # name me peer key_out key_in spi_out spi_in dir offload port base
    cat <<EOF
[tunnel]
device = "esp$1"
addresses = ["198.51.100.$((${11} + $2))/25"]
offload = $9
nat_t_port = ${10}
state_file = "$8/$1.seq"
control_socket = "$8/$1.sock"

[[sa]]
name = "out"
direction = "out"
spi = $6
keymat = "$4"
mode = { tunnel = { src = "192.0.2.$2", dst = "192.0.2.$3" } }
encap = { udp = { src_port = ${10}, dst_port = ${10} } }

[[sa]]
name = "in"
direction = "in"
spi = $7
keymat = "$5"
mode = { tunnel = { src = "192.0.2.$3", dst = "192.0.2.$2" } }
encap = { udp = { src_port = ${10}, dst_port = ${10} } }

[[policy]]
action = "protect"
sa = "out"
EOF
}
# Two tunnel pairs: the default (TUN offloads on) on 198.51.100.0/25 and
# port 4500, and one with offloads off on 198.51.100.128/25 and port 4501,
# to show what the offloads bring.
KEY_C=101112131415161718191a1b1c1d1e1f20212223
KEY_D=b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3
espgcm_config a 1 2 "$KEY_A" "$KEY_B" 0x1001 0x2001 "$WORK" true 4500 0 > "$WORK/a.toml"
espgcm_config b 2 1 "$KEY_B" "$KEY_A" 0x2001 0x1001 "$WORK" true 4500 0 > "$WORK/b.toml"
espgcm_config c 1 2 "$KEY_C" "$KEY_D" 0x3001 0x4001 "$WORK" false 4501 128 > "$WORK/c.toml"
espgcm_config d 2 1 "$KEY_D" "$KEY_C" 0x4001 0x3001 "$WORK" false 4501 128 > "$WORK/d.toml"
ip netns exec "$NSA" "$TUNNEL" run --config "$WORK/a.toml" --new-keys 2> "$WORK/a.log" &
PIDS+=($!)
ESPGCM_PIDS="$!"
ip netns exec "$NSB" "$TUNNEL" run --config "$WORK/b.toml" --new-keys 2> "$WORK/b.log" &
PIDS+=($!)
ESPGCM_PIDS="$ESPGCM_PIDS $!"
ip netns exec "$NSA" "$TUNNEL" run --config "$WORK/c.toml" --new-keys 2> "$WORK/c.log" &
PIDS+=($!)
NOOFFLOAD_PIDS="$!"
ip netns exec "$NSB" "$TUNNEL" run --config "$WORK/d.toml" --new-keys 2> "$WORK/d.log" &
PIDS+=($!)
NOOFFLOAD_PIDS="$NOOFFLOAD_PIDS $!"

# boringtun: WireGuard between the same namespaces, configured with wg.
wg genkey > "$WORK/wga.key"
wg genkey > "$WORK/wgb.key"
wg pubkey < "$WORK/wga.key" > "$WORK/wga.pub"
wg pubkey < "$WORK/wgb.key" > "$WORK/wgb.pub"
mkdir -p /var/run/wireguard
ip netns exec "$NSA" env WG_SUDO=1 "$BORINGTUN" --foreground --disable-drop-privileges --threads 2 wga \
    > "$WORK/wga.log" 2>&1 &
PIDS+=($!)
BORINGTUN_PIDS="$!"
ip netns exec "$NSB" env WG_SUDO=1 "$BORINGTUN" --foreground --disable-drop-privileges --threads 2 wgb \
    > "$WORK/wgb.log" 2>&1 &
PIDS+=($!)
BORINGTUN_PIDS="$BORINGTUN_PIDS $!"
for i in $(seq 50); do
    [ -S /var/run/wireguard/wga.sock ] && [ -S /var/run/wireguard/wgb.sock ] && [ -S "$WORK/a.sock" ] &&
        [ -S "$WORK/b.sock" ] && [ -S "$WORK/c.sock" ] && [ -S "$WORK/d.sock" ] && break
    sleep 0.1
done
ip netns exec "$NSA" wg set wga private-key "$WORK/wga.key" listen-port 51820 \
    peer "$(cat "$WORK/wgb.pub")" allowed-ips 203.0.113.2/32 endpoint 192.0.2.2:51821
ip netns exec "$NSB" wg set wgb private-key "$WORK/wgb.key" listen-port 51821 \
    peer "$(cat "$WORK/wga.pub")" allowed-ips 203.0.113.1/32 endpoint 192.0.2.1:51820
ip -n "$NSA" addr add 203.0.113.1/24 dev wga
ip -n "$NSB" addr add 203.0.113.2/24 dev wgb
ip -n "$NSA" link set wga up
ip -n "$NSB" link set wgb up
sleep 1
for dst in 192.0.2.2 198.51.100.2 198.51.100.130 203.0.113.2; do
    ip netns exec "$NSA" ping -c 1 -W 2 "$dst" >/dev/null || { echo "compare.sh: no path to $dst" >&2; exit 1; }
done

ip netns exec "$NSB" iperf3 -s -D -p 5201 --logfile "$WORK/iperf3-server.log" --pidfile "$WORK/iperf3.pid"
sleep 0.5

status() { "$TUNNEL" status --socket "$WORK/$1.sock"; }

# CPU time (user + system, all threads, in clock ticks) of both processes of
# a path: packets per CPU-second is the tunnel's own packet rate when the
# load generator is the limit.
cpu_ticks() {
    local pids total=0 p
    case "$1" in
        espgcm-tunnel) pids=$ESPGCM_PIDS ;;
        espgcm-nooffload) pids=$NOOFFLOAD_PIDS ;;
        boringtun) pids=$BORINGTUN_PIDS ;;
        *) echo 0; return ;;
    esac
    for p in $pids; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}

run_one() { # path dst kind round
    local path=$1 dst=$2 kind=$3 round=$4 args
    if [ "$kind" = tcp ]; then args=(-t "$SECS"); else args=(-u -l 64 -b 0 -t "$SECS"); fi
    if [ "$path" = espgcm-tunnel ]; then status a > "$WORK/a.before"; status b > "$WORK/b.before"; fi
    local cpu0 cpu1 receiver
    cpu0=$(cpu_ticks "$path")
    if [ "$kind" = udp64gso ] || [ "$kind" = udp64one ]; then
        # udp_pps: 64-byte datagrams handed to the kernel 64 at a time (UDP
        # GSO) or one per system call, counted by a GRO receiver for $SECS s
        # from the first.
        local batch=64
        if [ "$kind" = udp64one ]; then batch=1; fi
        ip netns exec "$NSB" "$UDP_PPS" recv --bind "$dst:9000" --secs "$SECS" > "$WORK/$path-$kind-$round.json" &
        receiver=$!
        sleep 0.3
        ip netns exec "$NSA" "$UDP_PPS" send --to "$dst:9000" --len 64 --batch "$batch" --secs "$((SECS + 1))" \
            2>/dev/null || true
        wait "$receiver" || true
    else
        ip netns exec "$NSA" iperf3 -c "$dst" -p 5201 -J "${args[@]}" > "$WORK/$path-$kind-$round.json" || true
    fi
    cpu1=$(cpu_ticks "$path")
    if [ "$path" = espgcm-tunnel ]; then status a > "$WORK/a.after"; status b > "$WORK/b.after"; fi
    python3 - "$WORK" "$path" "$kind" "$round" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys, os
work, path, kind, rnd, ticks, hz = sys.argv[1:]
cpu_s = int(ticks) / int(hz)
try:
    d = json.load(open(f"{work}/{path}-{kind}-{rnd}.json"))
except (OSError, ValueError) as e:
    print(f"{path:14} {kind:5} round {rnd}: no result ({e})")
    sys.exit(0)
end = d.get("end", {})
if "error" in d:
    print(f"{path:14} {kind:5} round {rnd}: iperf3 error: {d['error']}")
    sys.exit(0)
# Every branch sets `secs`, the seconds the load ran (or was counted).
if kind in ("udp64gso", "udp64one"):
    secs = d["seconds"]
    pps = d["pps"]
    bps = pps * 64 * 8
    line = f"{path:14} {kind} round {rnd}: {pps/1e6:6.3f} Mpps received"
elif kind == "tcp":
    secs = end["sum_received"]["seconds"]
    bps = end["sum_received"]["bits_per_second"]
    pps = bps / 8 / 1448
    line = f"{path:14} tcp   round {rnd}: {bps/1e9:6.2f} Gbit/s"
else:
    s = end["sum"]
    secs = s["seconds"]
    recv = s["packets"] - s["lost_packets"]
    pps = recv / secs
    bps = pps * 64 * 8
    line = f"{path:14} udp64 round {rnd}: {pps/1e6:6.3f} Mpps received ({s['lost_percent']:.1f}% lost of {s['packets']/secs/1e6:.3f} Mpps sent)"
rec = {"path": path, "kind": kind, "round": int(rnd), "bps": bps, "pps": pps}
if path != "veth" and cpu_s > 0:
    rec["pps_per_core"] = pps * float(secs) / cpu_s
    rec["cores"] = cpu_s / float(secs)
    line += f"   ({rec['cores']:.2f} cores for both tunnel processes: {rec['pps_per_core']/1e6:.3f} Mpps per core)"
if path == "espgcm-tunnel":
    split = []
    for side in "ab":
        b = json.load(open(f"{work}/{side}.before")); a = json.load(open(f"{work}/{side}.after"))
        tot = {}
        for wb, wa in zip(b["workers"], a["workers"]):
            for k in ("busy_ns", "seal_ns", "open_ns", "tun_read_ns", "tun_write_ns", "sock_recv_ns", "sock_send_ns",
                      "syscalls", "sealed", "opened"):
                tot[k] = tot.get(k, 0) + wa[k] - wb[k]
        busy = max(tot["busy_ns"], 1)
        crypto = tot["seal_ns"] + tot["open_ns"]
        sys_ns = sum(tot[k] for k in ("tun_read_ns", "tun_write_ns", "sock_recv_ns", "sock_send_ns"))
        wall = float(secs) * 1e9
        packets = tot["sealed"] + tot["opened"]
        split.append(f"{side.upper()}: workers busy {busy/wall:.2f} cores, crypto {crypto/busy*100:.0f}% / syscalls {sys_ns/busy*100:.0f}% / other {(busy-crypto-sys_ns)/busy*100:.0f}%, "
                     f"{packets/max(tot['syscalls'], 1):.1f} packets per system call")
        rec[f"{side}_busy_cores"] = busy / wall
        rec[f"{side}_crypto_share"] = crypto / busy
        rec[f"{side}_syscall_share"] = sys_ns / busy
    line += "   [" + "; ".join(split) + "]"
print(line)
with open(f"{work}/results.jsonl", "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
}

KINDS=${KINDS:-tcp udp64 udp64one udp64gso}
echo "compare.sh: $ROUNDS rounds of ${SECS} s: $KINDS, on each path in turn"
for round in $(seq "$ROUNDS"); do
    for kind in $KINDS; do
        run_one veth 192.0.2.2 "$kind" "$round"
        run_one espgcm-tunnel 198.51.100.2 "$kind" "$round"
        run_one espgcm-nooffload 198.51.100.130 "$kind" "$round"
        run_one boringtun 203.0.113.2 "$kind" "$round"
    done
done

python3 - "$WORK" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/results.jsonl")]
def pick(path, kind, key):
    return [r[key] for r in rows if r["path"] == path and r["kind"] == kind and key in r]
print()
print("summary (median of rounds; best in brackets)")
for kind, key, unit, scale in (("tcp", "bps", "Gbit/s", 1e9), ("udp64", "pps", "Mpps", 1e6), ("udp64one", "pps", "Mpps", 1e6),
                                 ("udp64gso", "pps", "Mpps", 1e6)):
    if not pick("veth", kind, key):
        continue
    med = {p: statistics.median(pick(p, kind, key)) for p in ("veth", "espgcm-tunnel", "espgcm-nooffload", "boringtun") if pick(p, kind, key)}
    best = {p: max(pick(p, kind, key)) for p in med}
    print(f"  {kind:5}: " + ", ".join(f"{p} {med[p]/scale:.3f} [{best[p]/scale:.3f}] {unit}" for p in med))
    if med.get("boringtun"):
        print(f"         espgcm-tunnel / boringtun: {med['espgcm-tunnel']/med['boringtun']:.1f}x (median), "
              f"{best['espgcm-tunnel']/best['boringtun']:.1f}x (best); espgcm-tunnel / veth: "
              f"{med['espgcm-tunnel']/med['veth']:.2f}")
    if med.get("espgcm-nooffload"):
        print(f"         TUN offloads on / off: {med['espgcm-tunnel']/med['espgcm-nooffload']:.2f}x")
    eff = {p: statistics.median(pick(p, kind, "pps_per_core")) for p in ("espgcm-tunnel", "boringtun") if pick(p, kind, "pps_per_core")}
    if len(eff) == 2:
        print(f"         packets per CPU-second of the tunnel processes: espgcm-tunnel {eff['espgcm-tunnel']/1e6:.3f} Mpps/core, "
              f"boringtun {eff['boringtun']/1e6:.3f} Mpps/core: {eff['espgcm-tunnel']/eff['boringtun']:.1f}x")
    es = [r for r in rows if r["path"] == "espgcm-tunnel" and r["kind"] == kind]
    if es:
        for side in "ab":
            c = statistics.median(r[f"{side}_crypto_share"] for r in es)
            s = statistics.median(r[f"{side}_syscall_share"] for r in es)
            b = statistics.median(r[f"{side}_busy_cores"] for r in es)
            print(f"         tunnel {side.upper()}: {b:.2f} cores busy; of that crypto {c*100:.0f}%, syscalls {s*100:.0f}%")
PY
