#!/usr/bin/env bash
# A real one-node Slurm cluster from Debian's packages (munge, slurmctld, slurmd), for tests and demos.
#
#   scripts/slurm-cluster.sh start DIR   # installs slurm-wlm and munge if missing, writes DIR/slurm.conf,
#                                        # starts munged, slurmctld and slurmd, waits for the node to be idle
#   SLURM_CONF=DIR/slurm.conf sbatch ...  # use it
#   scripts/slurm-cluster.sh stop DIR    # stops the three daemons by the PIDs in DIR (nothing else)
#
# Everything lives in DIR (config, sockets, state, logs); nothing under /etc is changed except the munge
# key Debian's package creates when it is installed.
set -euo pipefail

# The daemons started below must not inherit any descriptor of our caller's (a pipe it reads to its
# end would never close): keep only stdin, stdout and stderr.
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  if [[ "$fd" =~ ^[0-9]+$ ]] && (( fd > 2 )); then eval "exec $fd>&-" 2>/dev/null || true; fi
done

cmd="${1:-}"
dir="${2:-}"
if [[ -z "$cmd" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 64
fi

stop() {
  local d="$1"
  for f in "$d/run/slurmd.pid" "$d/run/slurmctld.pid" "$d/munge/munged.pid"; do
    [[ -f "$f" ]] || continue
    local pid
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

case "$cmd" in
stop)
  stop "$dir"
  exit 0
  ;;
start) ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 64
  ;;
esac

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [[ "$(id -u)" -ne 0 ]]; then echo "slurm-wlm and munge are missing; run as root or install them" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if [[ "$(id -u)" -ne 0 ]]; then echo "$0 start must run as root (slurmd runs jobs as their user)" >&2; exit 1; fi

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
chmod 755 "$dir"  # munged runs as the munge user and must reach its folder
mkdir -p "$dir/munge" "$dir/run" "$dir/spool/slurmctld" "$dir/spool/slurmd" "$dir/log"
chown munge:munge "$dir/munge"
chmod 711 "$dir/munge"  # munged insists that clients can reach its socket
[[ -f /etc/munge/munge.key ]] || { echo "no /etc/munge/munge.key (reinstall munge)" >&2; exit 1; }
cpus="$(nproc)"
# ports of their own, so that two clusters (tests running in parallel) do not meet
ctld_port=$((20000 + RANDOM % 20000))
slurmd_port=$((ctld_port + 1))
mem="$(awk '/MemTotal/{print int($2/1024/2)}' /proc/meminfo)"

cat >"$dir/slurm.conf" <<EOF
ClusterName=zt
SlurmctldHost=localhost
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
SlurmdPidFile=$dir/run/slurmd.pid
StateSaveLocation=$dir/spool/slurmctld
SlurmdSpoolDir=$dir/spool/slurmd
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF

# the daemons get no stdio of ours: a caller reading our output to its end must not wait on them
runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" </dev/null >/dev/null 2>&1
export SLURM_CONF="$dir/slurm.conf"
slurmctld </dev/null >/dev/null 2>&1
slurmd </dev/null >/dev/null 2>&1
for _ in $(seq 1 100); do
  if sinfo -h -o '%t' 2>/dev/null | grep -q -E '^(idle|mix|alloc)'; then
    echo "slurm up: SLURM_CONF=$dir/slurm.conf"
    exit 0
  fi
  sleep 0.2
done
echo "slurm did not come up within 20 s; logs in $dir/log" >&2
stop "$dir"
exit 1
