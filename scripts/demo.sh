#!/usr/bin/env bash
# The demo: synthetic data with a planted truth -> inspect -> train DeepFM -> test AUC vs the Bayes-optimal AUC
# -> an AutoFIS search that should keep exactly the planted interactions -> the HTML report.
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
echo "== 3. train DeepFM (configs/deepfm_synth.yaml); the data is encoded once and cached under $OUT/cache"
$RECNAS train configs/deepfm_synth.yaml --out "$OUT/runs/deepfm" \
  --set data.path="$OUT/synth" --set data.cache_dir="$OUT/cache"
echo
echo "== 4. DeepFM against the best any model could do on this data"
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
m = json.loads((out / "runs/deepfm/metrics.json").read_text())
t = json.loads((out / "synth/truth.json").read_text())
print(f"DeepFM test AUC {m['test_auc']:.4f}   Bayes-optimal test AUC {t['bayes_test_auc']:.4f}   "
      f"gap {t['bayes_test_auc'] - m['test_auc']:.4f}")
print(f"({m['epochs']} epochs, {m['train_samples_per_s']:,.0f} train samples/s, "
      f"{m['embedding_params']:,} embedding parameters; run folder {out / 'runs/deepfm'})")
PY
echo
echo "== 5. AutoFIS search (configs/autofis_synth.yaml): gate every pair, GRDA zeroes the useless ones, retrain"
rm -rf "$OUT/runs/autofis"  # a fresh search each time: a folder left by an older recnas may hold other settings
$RECNAS search configs/autofis_synth.yaml --out "$OUT/runs/autofis" --quiet \
  --set data.path="$OUT/synth" --set data.cache_dir="$OUT/cache"
echo
echo "== 6. planted against found"
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
t = json.loads((out / "synth/truth.json").read_text())
arch = json.loads((out / "runs/autofis/search/arch.json").read_text())
rep = json.loads((out / "runs/autofis/report.json").read_text())
planted = {tuple(sorted(p)) for p in t["interactions"]}
found = {tuple(sorted(p)) for p in arch["interactions"]}
print("planted interactions:", ", ".join("*".join(p) for p in sorted(planted)))
print(f"found interactions:   {', '.join('*'.join(p) for p in sorted(found))}   "
      f"({len(found)} of {arch['num_pairs']} pairs kept; planted recovered: {len(planted & found)}/{len(planted)})")
r = rep["results"]
print(f"AutoDeepFM test AUC {r['searched']['test_auc']:.4f} vs DeepFM {r['baseline']['test_auc']:.4f} "
      f"(Bayes-optimal {t['bayes_test_auc']:.4f})")
print(f"report: {out / 'runs/autofis/report.html'}")
PY
