"""Does AutoDim's median pick (issue 26) change the benchmark cells? The search stage of each cell, exported both ways.

For frappe_full and ml100k at seeds 2026-2028, the AutoDim cell's search runs as `bench/search_bench.py` runs it
(bench/configs/autodim_<dataset>.yaml, which set its epochs, warm-up and memory term), and the same final logits
are exported with `search.pick=median` (the new default) and `argmax` (the old rule), budget cut and fill included.
A cell whose two exports are equal retrains to the same model, so its figures in bench/README.md stand; a cell
whose exports differ must be re-run. Writes bench/results/autodim_pick.json.

    .venv/bin/python bench/autodim_pick.py [--datasets frappe_full,ml100k] [--seeds 2026,2027,2028]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from bench_configs import ROOT, bench_config

WORK = ROOT / "bench" / "work" / "autodim_pick"


def exports(dataset: str, seed: int) -> dict:
    """The cell's search, and its export under each pick."""
    from recnas.experiment.run import load_splits, set_seed
    from recnas.experiment.search import read_arch, search_stage
    from recnas.methods import method_of

    cfg = bench_config("autodim", dataset, seed, 2, 50, WORK, [])
    method = method_of(cfg)
    folder = WORK / "runs" / f"{dataset}-{seed}"
    splits = load_splits(cfg)
    if (folder / "arch.json").is_file():
        arch = read_arch(folder / "arch.json")
    else:
        set_seed(cfg.seed, cfg.threads)
        arch = search_stage(method, splits, folder)
    block = method.block(splits.ds.schema)
    names = block.field_names
    with torch.no_grad():  # softmax(log p) = p: the search's final distribution
        block.logits.copy_(torch.log(torch.tensor([arch["probs"][f"dim/{f}"] for f in names]).clamp_min(1e-12)))
    out = {}
    for pick in ("median", "argmax"):
        block.pick = pick
        dims = block.chosen_dims()
        out[pick] = {"dims": dims, "ep": sum(block.rows[f] * d for f, d in dims.items())}
    assert out["median"]["dims"] == arch["dims"], "the search's own export is the median one"
    return {"dataset": dataset, "seed": seed, **out, "same": out["median"]["dims"] == out["argmax"]["dims"],
            "full_ep": arch["full_ep"]}


def main() -> None:
    """Every cell; one line each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="frappe_full,ml100k")
    ap.add_argument("--seeds", default="2026,2027,2028")
    args = ap.parse_args()
    rows = []
    for d in args.datasets.split(","):
        for s in map(int, args.seeds.split(",")):
            r = exports(d, s)
            rows.append(r)
            print(d, s, "same export" if r["same"] else "DIFFERENT export", r["median"]["dims"], r["argmax"]["dims"],
                  flush=True)
    Path(ROOT / "bench" / "results" / "autodim_pick.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
