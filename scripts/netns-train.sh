#!/usr/bin/env bash
# Trains across three network namespaces on this machine: a coordinator and two workers, each in its
# own namespace with a 10.x address, joined by a bridge in a fourth namespace. Everything it creates
# (namespaces, links, processes) is removed on exit, whatever happens. Needs root (ip netns).
#
#   scripts/netns-train.sh ZTRAIN_BINARY OUT_DIR [training flags...]
#   e.g. scripts/netns-train.sh .build/release/ztrain /tmp/netns-run --target-loss 1e-4
set -euo pipefail
bin="$(readlink -f "$1")"; out="$2"; shift 2
[ "$(id -u)" -eq 0 ] || { echo "netns-train: needs root for ip netns" >&2; exit 2; }
command -v ip >/dev/null || { echo "netns-train: needs iproute2 (ip)" >&2; exit 2; }

tag="zt$$"                       # unique per run: parallel runs do not collide
sw="${tag}s"; nc="${tag}c"; n1="${tag}a"; n2="${tag}b"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for ns in "$nc" "$n1" "$n2" "$sw"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

for ns in "$sw" "$nc" "$n1" "$n2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
i=1
for ns in "$nc" "$n1" "$n2"; do
  ip link add "${ns}v" type veth peer name "${ns}p"
  ip link set "${ns}v" netns "$ns"
  ip link set "${ns}p" netns "$sw"
  ip -n "$sw" link set "${ns}p" master br0
  ip -n "$sw" link set "${ns}p" up
  ip -n "$ns" addr add "10.77.0.$i/24" dev "${ns}v"
  ip -n "$ns" link set "${ns}v" up
  i=$((i + 1))
done

endpoint="tcp://10.77.0.1:5555"
ip netns exec "$nc" "$bin" coordinator --bind "$endpoint" --workers 2 --out "$out" --join-timeout 30 "$@" &
coord=$!; pids+=("$coord")
ip netns exec "$n1" "$bin" worker --connect "$endpoint" --threads 1 --connect-timeout 30 & pids+=("$!")
ip netns exec "$n2" "$bin" worker --connect "$endpoint" --threads 1 --connect-timeout 30 & pids+=("$!")

status=0
wait "$coord" || status=$?
for p in "${pids[@]:1}"; do wait "$p" || status=$((status == 0 ? $? : status)); done
echo "netns-train: coordinator in $nc (10.77.0.1), workers in $n1 (10.77.0.2) and $n2 (10.77.0.3); exit $status" >&2
exit "$status"
