#!/usr/bin/env bash
# Runs `sotto-jitter eval` on every trace in ../shared/data/traces
# and collects the final JSON line of each run in $OUT/all.jsonl. Each
# run adds the oracle at the goal's 1 % late loss (`oracle_late1`).
# Usage: jitter/scripts/eval_all.sh [SECONDS] [OUT] [extra eval flags...]
# SOTTO_TRACES=DIR takes the traces from DIR instead (same subfolders:
# mahimahi/, cicv5g/, deterministic6g/; missing ones are skipped), e.g.
# testdata/traces/unseen for the traces no setting was tuned on.
set -euo pipefail
SECONDS_OF_SPEECH=${1:-120}
OUT=${2:-jitter-eval}
shift 2 || true
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${SOTTO_TRACES:-$ROOT/../shared/data/traces}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build -q --release -p sotto-jitter --features eval --bin sotto-jitter
BIN=$CARGO_TARGET_DIR/release/sotto-jitter
PY=${SOTTO_PYTHON:-$CARGO_TARGET_DIR/py-venv/bin/python3}
[ -x "$PY" ] && export SOTTO_PYTHON=$PY
mkdir -p "$OUT"
: > "$OUT/all.jsonl"
for trace in "$DATA"/mahimahi/* "$DATA"/cicv5g/* "$DATA"/deterministic6g/*; do
  [ -f "$trace" ] || continue
  case "$trace" in
    */mahimahi/*) fmt=mahimahi ;;
    */deterministic6g/*) fmt=histogram ;;
    *) fmt=cicv5g ;;
  esac
  name=$(basename "$trace")
  "$BIN" eval --trace "$trace" --format "$fmt" --seconds "$SECONDS_OF_SPEECH" \
    --out "$OUT/$name" --json --oracle-late-pct 1 \
    --oracle-change-penalty 2000,10000,50000,250000 "$@" | tee "$OUT/$name.txt" | tail -1 >> "$OUT/all.jsonl"
done
echo "wrote $OUT/all.jsonl"
