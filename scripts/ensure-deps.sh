#!/usr/bin/env bash
# Installs what ztrain needs from Debian if it is missing: libzmq3-dev, libopenblas-dev (and pkg-config).
# With --test, also what the tests of deploy/ use: Slurm and munge, Open MPI, iproute2 (network
# namespaces), python3 with venv (the delay proxy, kubernetes-validate, hadolint, tensorboard), systemd-analyze
# and Prometheus (the /metrics test scrapes a live run with it).
# Safe to run any number of times; does nothing when everything is there.
set -euo pipefail

need=()
if ! { pkg-config --exists libzmq 2>/dev/null || [ -e /usr/include/zmq.h ]; }; then need+=(libzmq3-dev); fi
if ! compgen -G "/usr/lib/*/libopenblas.so" >/dev/null && ! [ -e /usr/lib/libopenblas.so ]; then need+=(libopenblas-dev); fi
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ "${1:-}" = "--test" ]; then
  command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
  command -v munged >/dev/null 2>&1 || [ -x /usr/sbin/munged ] || need+=(munge)
  command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
  echo "ztrain needs: ${need[*]}. Install them (apt-get install ${need[*]}) or run this as root." >&2
  exit 1
fi
echo "installing ${need[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
