#!/usr/bin/env bash
# The demo: synthetic data with a planted truth -> inspect -> prepare (encode once, cached).
set -euo pipefail
cd "$(dirname "$0")/.."
RECNAS=.venv/bin/recnas
OUT=${DEMO_OUT:-demo_out}
ROWS=${DEMO_ROWS:-100000}
mkdir -p "$OUT"
echo "== 1. synthesise $ROWS rows with planted interactions (seed 0) -> $OUT/synth"
$RECNAS synth --out "$OUT/synth" --rows "$ROWS" --seed 0
echo
echo "== 2. inspect the dataset"
$RECNAS data inspect "$OUT/synth"
echo
echo "== 3. prepare: encode once into memory-mappable arrays (cache under $OUT/cache)"
$RECNAS data prepare "$OUT/synth" --cache-dir "$OUT/cache"
echo
echo "== 4. prepare again: the cache is reused"
$RECNAS data prepare "$OUT/synth" --cache-dir "$OUT/cache"
