"""nis on the built-in synthetic data: search -> retrain -> baseline -> report, from Python.

Run from the repository root: `.venv/bin/python examples/search_nis.py` (a few minutes on 2 cores).
"""

import recnas

recnas.synthesize("demo_out/synth_small", recnas.SynthConfig(rows=20_000, seed=0))
cfg = recnas.load_config("configs/nis_synth.yaml", ["data.path=demo_out/synth_small", "trainer.epochs=5"])
run = recnas.search(cfg, "demo_out/runs/example_nis", log=print)
print("searched:", run.retrain["test_auc"], "baseline:", run.baseline["test_auc"], "report:", run.report)
