#!/usr/bin/env bash
# A real Slurm cluster from Debian's packages (munge, slurmctld, slurmd), for tests and demos.
#
#   scripts/slurm-cluster.sh start DIR          # one node: installs slurm-wlm and munge if missing, writes
#                                               # DIR/slurm.conf, starts munged, slurmctld and slurmd, waits
#                                               # for the node to be idle
#   NODES=2 scripts/slurm-cluster.sh start DIR  # NODES slurmd nodes (n1, n2, ...), each in its own network
#                                               # namespace with its own address on a bridge, under one
#                                               # slurmctld in one more namespace
#   scripts/slurm-cluster.sh run DIR CMD ...    # runs CMD (sbatch, srun, sinfo...) with SLURM_CONF set, in the
#                                               # controller's namespace when there is one
#   scripts/slurm-cluster.sh stop DIR           # stops the daemons by the PIDs in DIR (nothing else) and
#                                               # removes the namespaces it created
#
# Everything lives in DIR (config, sockets, state, logs); nothing under /etc is changed except the munge
# key Debian's package creates when it is installed. Namespace and link names derive from the PID of
# `start` and a random byte, the subnet from that PID, and the ports are drawn at random, so clusters
# started in parallel do not meet.
set -euo pipefail

# The daemons started below must not inherit any descriptor of our caller's (a pipe it reads to its
# end would never close): keep only stdin, stdout and stderr.
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  if [[ "$fd" =~ ^[0-9]+$ ]] && (( fd > 2 )); then eval "exec $fd>&-" 2>/dev/null || true; fi
done

usage() { echo "usage: $0 start|stop DIR | run DIR CMD [ARGS...]   (NODES=N for N nodes in network namespaces)" >&2; exit 64; }
cmd="${1:-}"
dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || usage

stop() {
  local d="$1" f pid
  # slurmd (one PID file per node), then slurmctld, then munged
  for f in "$d"/run/slurmd*.pid "$d/run/slurmctld.pid" "$d/munge/munged.pid"; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  # the namespaces this cluster created (their veth pairs go with them)
  if [[ -f "$d/netns" ]]; then
    local ns
    while read -r ns; do
      [[ -n "$ns" ]] || continue
      # a job step still running in a node's namespace (slurmstepd and its tasks): end it first
      local p
      for p in $(ip netns pids "$ns" 2>/dev/null || true); do kill -9 "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    done <"$d/netns"
    rm -f "$d/netns"
  fi
}

case "$cmd" in
stop)
  stop "$dir"
  exit 0
  ;;
run)
  shift 2
  [[ $# -gt 0 ]] || usage
  export SLURM_CONF="$dir/slurm.conf"
  if [[ -f "$dir/controller-netns" ]]; then
    exec nsenter --net="/var/run/netns/$(cat "$dir/controller-netns")" "$@"
  fi
  exec "$@"
  ;;
start) ;;
*) usage ;;
esac

nodes="${NODES:-1}"
[[ "$nodes" =~ ^[0-9]+$ ]] && (( nodes >= 1 && nodes <= 16 )) || { echo "NODES must be in 1...16" >&2; exit 64; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [[ "$(id -u)" -ne 0 ]]; then echo "slurm-wlm and munge are missing; run as root or install them" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if [[ "$(id -u)" -ne 0 ]]; then echo "$0 start must run as root (slurmd runs jobs as their user)" >&2; exit 1; fi
if (( nodes > 1 )); then
  command -v ip >/dev/null && command -v nsenter >/dev/null || { echo "NODES>1 needs iproute2 (ip) and nsenter" >&2; exit 1; }
fi

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
# a start that fails half way leaves nothing running behind
trap 'status=$?; if (( status != 0 )); then stop "$dir"; fi' EXIT
chmod 755 "$dir"  # munged runs as the munge user and must reach its folder
mkdir -p "$dir/munge" "$dir/run" "$dir/spool/slurmctld" "$dir/log"
chown munge:munge "$dir/munge"
chmod 711 "$dir/munge"  # munged insists that clients can reach its socket
[[ -f /etc/munge/munge.key ]] || { echo "no /etc/munge/munge.key (reinstall munge)" >&2; exit 1; }
cpus="$(nproc)"
# ports of their own, so that two clusters (tests running in parallel) do not meet
ctld_port=$((20000 + RANDOM % 20000))
slurmd_port=$((ctld_port + 1))
mem="$(awk '/MemTotal/{print int($2/1024/2)}' /proc/meminfo)"

if (( nodes == 1 )); then
  ctld_host="localhost"
  node_lines="NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN"
  node_list="localhost"
else
  # namespaces: <tag>c (slurmctld and the bridge), <tag>n1..N (one per slurmd); 10.A.B.0/24 from our PID.
  # The tag is our PID and a random byte: this process ends before the cluster does, so its PID alone
  # could come back in another run's start while this cluster is up.
  tag=""
  for _ in 1 2 3 4 5; do
    tag="zs$$$(printf '%02x' $((RANDOM % 256)))"
    [[ -e "/var/run/netns/${tag}c" ]] || break
  done
  net="10.$((64 + ($$ >> 8) % 64)).$(($$ % 256))"
  ctl_ns="${tag}c"
  bridge="${tag}b"
  echo "$ctl_ns" >"$dir/netns"
  ip netns add "$ctl_ns"
  echo "$ctl_ns" >"$dir/controller-netns"
  ip -n "$ctl_ns" link set lo up
  ip -n "$ctl_ns" link add "$bridge" type bridge
  ip -n "$ctl_ns" addr add "$net.10/24" dev "$bridge"
  ip -n "$ctl_ns" link set "$bridge" up
  ctld_host="$(hostname)($net.10)"
  node_lines=""
  node_list=""
  for i in $(seq 1 "$nodes"); do
    ns="${tag}n$i"
    echo "$ns" >>"$dir/netns"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "${tag}v$i" type veth peer name "${tag}p$i"
    ip link set "${tag}v$i" netns "$ns"
    ip link set "${tag}p$i" netns "$ctl_ns"
    ip -n "$ctl_ns" link set "${tag}p$i" master "$bridge"
    ip -n "$ctl_ns" link set "${tag}p$i" up
    ip -n "$ns" addr add "$net.$((10 + i))/24" dev "${tag}v$i"
    ip -n "$ns" link set "${tag}v$i" up
    node_lines+="NodeName=n$i NodeAddr=$net.$((10 + i)) CPUs=$cpus RealMemory=$mem State=UNKNOWN"$'\n'
    node_list+="${node_list:+,}n$i"
  done
fi

cat >"$dir/slurm.conf" <<EOC
ClusterName=zt
SlurmctldHost=$ctld_host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
StateSaveLocation=$dir/spool/slurmctld
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
${node_lines}
PartitionName=debug Nodes=$node_list Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOC

# the daemons get no stdio of ours: a caller reading our output to its end must not wait on them
runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" </dev/null >/dev/null 2>&1
export SLURM_CONF="$dir/slurm.conf"
# nsenter --net, not `ip netns exec`: the latter remounts /sys, and slurmd then finds no cgroup filesystem
in_ns=()
if [[ -f "$dir/controller-netns" ]]; then in_ns=(nsenter --net="/var/run/netns/$(cat "$dir/controller-netns")"); fi
"${in_ns[@]}" slurmctld </dev/null >/dev/null 2>&1
if (( nodes == 1 )); then
  slurmd </dev/null >/dev/null 2>&1
else
  for i in $(seq 1 "$nodes"); do
    nsenter --net="/var/run/netns/${tag}n$i" slurmd -N "n$i" </dev/null >/dev/null 2>&1
  done
fi
for _ in $(seq 1 150); do
  up="$("${in_ns[@]}" sinfo -h -N -o '%t' 2>/dev/null | grep -c -E '^(idle|mix|alloc)' || true)"
  if (( up == nodes )); then
    echo "slurm up: $nodes node(s), SLURM_CONF=$dir/slurm.conf"
    exit 0
  fi
  sleep 0.2
done
echo "slurm did not bring $nodes node(s) up within 30 s; logs in $dir/log" >&2
stop "$dir"
exit 1
