#!/usr/bin/env bash
# Behaviour check for refactors: trains the same configurations with two ztrain binaries and compares
# the weights of each run's model.safetensors (tensor names and bytes; the metadata is ignored).
#   scripts/bitcompat.sh BASE_BIN NEW_BIN      e.g. a release build of main, and .build/release/ztrain
# The configurations cover what the tests and `ztrain bench` use: the sincos reference (both cells,
# both losses, SGD and Adam, threads, full batch with the epoch loss measured by the next step, a
# target loss), data-parallel runs with workers, a CSV with scaling, differencing and the linear head,
# and a run with a learning-rate schedule, validation, early stopping and the best weights.
# Prints one line per configuration; exits 1 if any differs or fails to run.
set -uo pipefail
base=${1:?usage: bitcompat.sh BASE_BIN NEW_BIN}
new=${2:?usage: bitcompat.sh BASE_BIN NEW_BIN}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
configs=(
  "--in-process --epochs 5 --seed 3"
  "--in-process --hidden 64 --batch 48 --micro-batch 8 --steps 300 --seed 7 --threads 2"
  "--in-process --cell elman --loss all --activation relu --epochs 5 --seed 1"
  "--in-process --hidden 256 --batch 996 --micro-batch 249 --steps 20"
  "--in-process --batch 996 --micro-batch 100 --epochs 30 --target-loss 0.05"
  "--in-process --optimizer sgd --momentum 0.9 --lr 0.05 --epochs 4 --seq-len 6 --no-shuffle"
  "--in-process --hidden 32 --target-loss 1e-4"
  "--workers 3 --hidden 48 --batch 64 --micro-batch 8 --steps 200 --seed 9"
  "--workers 2 --batch 996 --micro-batch 100 --epochs 30 --target-loss 0.05"
  "--workers 2 --cell elman --epochs 3 --val-fraction 0.2 --seed 5"
  "--in-process --data $root/examples/series/nile.csv --time-column time --scale zscore --difference 1 --head linear --epochs 20"
  "--in-process --data $root/examples/series/co2.csv --time-column time --scale minmax --difference auto --epochs 5"
  "--workers 2 --data $root/examples/series/nile.csv --time-column time --epochs 10"
  "--in-process --epochs 20 --val-fraction 0.2 --lr-schedule cosine --warmup 10 --early-stopping 3 --seed 4"
  "--in-process --epochs 12 --val-fraction 0.1 --lr-schedule plateau --target-loss 1e-3"
)
digest() {
  python3 - "$1" <<'PY'
import hashlib, json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; hdr = json.loads(raw[8:8 + n]); h = hashlib.sha256()
for k in sorted(k for k in hdr if k != "__metadata__"):
    a, b = hdr[k]["data_offsets"]; h.update(k.encode() + b"\0" + raw[8 + n + a:8 + n + b])
print(h.hexdigest())
PY
}
bad=0; i=0
for line in "${configs[@]}"; do
  i=$((i+1))
  sums=()
  for which in base new; do
    bin=$base; [[ $which == new ]] && bin=$new
    # shellcheck disable=SC2086  # the configuration is a list of flags
    if ! timeout 300 "$bin" train $line --quiet --out "$tmp/$which$i" >"$tmp/$which$i.log" 2>&1; then
      echo "config $i: FAILED to run with $which: $line ($(tail -1 "$tmp/$which$i.log"))"; bad=1; continue 2
    fi
    sums+=("$(digest "$tmp/$which$i/model.safetensors")")
  done
  if [[ ${sums[0]} == "${sums[1]}" ]]; then echo "config $i: identical  ($line)"; else echo "config $i: DIFFERS  ($line)"; bad=1; fi
done
exit $bad
