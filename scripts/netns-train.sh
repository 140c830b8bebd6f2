#!/usr/bin/env bash
# Trains across network namespaces on this machine: a coordinator and HOSTS-1 workers, each in its own
# namespace with a 10.x address, joined by a bridge in one more namespace. Everything it creates
# (namespaces, links, processes, keys) is removed on exit, whatever happens. Needs root (ip netns).
#
#   scripts/netns-train.sh ZTRAIN_BINARY OUT_DIR [training flags...]
#   e.g. scripts/netns-train.sh .build/release/ztrain /tmp/netns-run --target-loss 1e-4
#        scripts/netns-train.sh .build/release/ztrain /tmp/netns-run --aggregation sharded --steps 6
#
# Training flags go to the coordinator; workers learn the mode from its WELCOME. Each worker binds its
# peer endpoint (sharded runs: reduce-scatter and all-gather between workers) on its own 10.x address,
# so worker-to-worker traffic crosses the bridge and every shaped link, also with DELAY_MS (where the
# worker reaches the coordinator through a proxy on loopback).
#
# Knobs (environment):
#   HOSTS=3        hosts in all: one coordinator, HOSTS-1 workers
#   CURVE=1        CURVE keys from `ztrain keygen`; every worker authenticates, traffic is encrypted
#   RATE=100mbit   shape every host's link both ways with tc tbf
#   DELAY_MS=2     one-way latency added by a user-space proxy in each worker's namespace
#                  (scripts/delay-proxy.py; the kernel has no netem); coordinator links only,
#                  worker-to-worker links are not delayed
#   PEER_PORT=7000 port of every worker's peer endpoint (on its own 10.x address)
set -euo pipefail
bin="$(readlink -f "$1")"; out="$2"; shift 2
[ "$(id -u)" -eq 0 ] || { echo "netns-train: needs root for ip netns" >&2; exit 2; }
command -v ip >/dev/null || { echo "netns-train: needs iproute2 (ip)" >&2; exit 2; }

hosts="${HOSTS:-3}"
(( hosts >= 2 && hosts <= 32 )) || { echo "netns-train: HOSTS must be in 2...32" >&2; exit 2; }
tag="zt$$"                       # unique per run: parallel runs do not collide
sw="${tag}s"; nc="${tag}c"
workers=()
for i in $(seq 1 $((hosts - 1))); do workers+=("${tag}w$i"); done
pids=()
keys=""
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for ns in "$nc" "${workers[@]}" "$sw"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "$keys" ]; then rm -rf "$keys"; fi
}
trap cleanup EXIT INT TERM

for ns in "$sw" "$nc" "${workers[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
i=1
for ns in "$nc" "${workers[@]}"; do
  ip link add "${ns}v" type veth peer name "${ns}p"
  ip link set "${ns}v" netns "$ns"
  ip link set "${ns}p" netns "$sw"
  ip -n "$sw" link set "${ns}p" master br0
  ip -n "$sw" link set "${ns}p" up
  ip -n "$ns" addr add "10.77.0.$i/24" dev "${ns}v"
  ip -n "$ns" link set "${ns}v" up
  if [ -n "${RATE:-}" ]; then
    # both directions: the host's own egress, and the bridge port towards it
    ip netns exec "$ns" tc qdisc add dev "${ns}v" root tbf rate "$RATE" burst 32kb latency 100ms
    ip netns exec "$sw" tc qdisc add dev "${ns}p" root tbf rate "$RATE" burst 32kb latency 100ms
  fi
  i=$((i + 1))
done

security=()
if [ "${CURVE:-0}" = 1 ]; then
  keys="$(mktemp -d)"
  "$bin" keygen --out "$keys" >/dev/null
  security=(--curve-dir "$keys")
fi

endpoint="tcp://10.77.0.1:5555"
ip netns exec "$nc" "$bin" coordinator --bind "$endpoint" --workers "$((hosts - 1))" --out "$out" --join-timeout 60 \
  "${security[@]}" "$@" &
coord=$!; pids+=("$coord")
peer_port="${PEER_PORT:-7000}"
i=2
for ns in "${workers[@]}"; do
  connect="$endpoint"
  peer="tcp://10.77.0.$i:$peer_port"; i=$((i + 1))
  if [ -n "${DELAY_MS:-}" ]; then
    ip netns exec "$ns" python3 "$(dirname "$0")/delay-proxy.py" 127.0.0.1:6000 10.77.0.1:5555 "$DELAY_MS" >/dev/null &
    pids+=("$!")
    connect="tcp://127.0.0.1:6000"
  fi
  ip netns exec "$ns" "$bin" worker --connect "$connect" --threads 1 --connect-timeout 60 --peer-bind "$peer" \
    "${security[@]}" & pids+=("$!")
done

status=0
wait "$coord" || status=$?
for p in "${pids[@]:1}"; do
  # the delay proxies run until the cleanup stops them
  if ps -o args= -p "$p" 2>/dev/null | grep -q delay-proxy; then continue; fi
  wait "$p" || status=$((status == 0 ? $? : status))
done
# bytes through each host's link (its veth end): in a sharded run the workers' links carry the
# reduce-scatter and all-gather, the coordinator's the control plane and the updated slices (with
# owner recovery also the owners' optimizer state)
i=1
for ns in "$nc" "${workers[@]}"; do
  d="/sys/class/net/${ns}v/statistics"
  echo "netns-train: link 10.77.0.$i tx_bytes $(ip netns exec "$ns" cat "$d/tx_bytes") rx_bytes $(ip netns exec "$ns" cat "$d/rx_bytes")" >&2
  i=$((i + 1))
done
echo "netns-train: coordinator in $nc (10.77.0.1), $((hosts - 1)) workers in ${workers[*]}; curve ${CURVE:-0}, rate ${RATE:-unshaped}, delay ${DELAY_MS:-0} ms; exit $status" >&2
exit "$status"
