"""Layout probe: retrain hand-made size layouts inside a finished ESAPN run of `bench/rl_bench.py`.

What it answers: how much test AUC the choice of *which* ids grow moves at a fixed memory, next to the run's
learned layout and its random control. Every layout starts from the smallest size and grows the named (field,
bucket) cells, so `--layout head32=item:0=32,user:0-2=32` gives the most frequent tenth of the items and the most
frequent three tenths of the users the largest size (buckets are frequency ranks, 0 = head). Each layout is
retrained with the run's own retrain settings and seed (`retrain_stage`), into `<run>/layouts/<name>`. Writes
bench/results/layouts_<run name><tag>.json.

    .venv/bin/python bench/layout_probe.py --run bench/work/rl5/runs/frappe_full-esapn-2026 \
        --layout head32=item:0=32,user:0-2=32 [--layout ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path

from recnas.fileio import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]


def parse_layout(spec: str) -> tuple[str, dict[str, dict[int, int]]]:
    """`name=field:a-b=size,field:c=size` -> (name, {field: {bucket: size}})."""
    name, sep, cells = spec.partition("=")
    if not sep or not name:
        raise SystemExit(f"--layout {spec!r}: expected name=field:buckets=size,...")
    grow: dict[str, dict[int, int]] = {}
    for cell in cells.split(","):
        try:
            where, size = cell.rsplit("=", 1)
            field, buckets = where.split(":")
            lo, _, hi = buckets.partition("-")
            for b in range(int(lo), int(hi or lo) + 1):
                grow.setdefault(field, {})[b] = int(size)
        except ValueError:
            raise SystemExit(f"--layout {spec!r}: cannot read {cell!r}; write field:bucket=size or "
                             "field:first-last=size") from None
    return name, grow


def layout_arch(cfg, schema, arch: dict, grow: dict[str, dict[int, int]]) -> dict:  # noqa: ANN001
    """The arch.json of a hand-made layout, written as the search writes one (`ESAPN.arch`).

    Every bucket is at the smallest size except the grown cells.
    """
    from recnas.methods import method_of
    from recnas.space.esapn import size_label

    method = method_of(cfg)
    block = method.block(schema)
    sizes, n_buckets = block.sizes, block.n_buckets
    sample = {size_label(f, b): sizes[0] for f in block.fields for b in range(n_buckets)}
    for field, cells in grow.items():
        if field not in block.fields:
            raise SystemExit(f"layout names field {field!r}; the run's fields are {sorted(block.fields)}")
        for b, s in cells.items():
            if s not in sizes or not 0 <= b < n_buckets:
                raise SystemExit(f"layout cell {field}:{b}={s}: sizes are {sizes}, buckets 0-{n_buckets - 1}")
            sample[size_label(field, b)] = s
    block.set_sample(sample)
    out = {"method": arch["method"], "model": arch["model"], **method.arch(block, sample)}
    if out["space_fingerprint"] != arch["space_fingerprint"]:
        raise SystemExit("the run's config builds another ESAPN space than its search had; was it edited?")
    out["layout"] = "hand-made (bench/layout_probe.py)"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True, help="a finished ESAPN run folder of bench/rl_bench.py")
    ap.add_argument("--layout", action="append", default=[], help="name=field:buckets=size,... (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    import torch

    from recnas.experiment.run import load_config_file, load_splits
    from recnas.experiment.search import read_arch, retrain_stage
    from recnas.methods import method_of

    arch = read_arch(args.run / "search" / "arch.json")
    if arch["method"] != "esapn":
        raise SystemExit(f"{args.run}: an ESAPN run is needed, this one is {arch['method']}")
    cfg = load_config_file(args.run / "config.yaml")
    cfg.threads = args.threads
    splits = load_splits(cfg)

    def metrics(stage: str) -> dict:
        m = json.loads((args.run / stage / "metrics.json").read_text())
        a = json.loads((args.run / stage / "arch.json").read_text())
        return {"valid_auc": m["valid_auc"], "test_auc": m["test_auc"], "ep_fraction": a["ep"] / a["full_ep"],
                "best_epoch": m["best_epoch"]}

    rows = {"learned": metrics("retrain"), "control": metrics("control")}
    for spec in args.layout:
        name, grow = parse_layout(spec)
        hand = layout_arch(cfg, splits.ds.schema, arch, grow)
        res = retrain_stage(method_of(cfg), splits, hand, args.run / "layouts" / name)
        rows[name] = {"spec": spec, "valid_auc": res["valid_auc"], "test_auc": res["test_auc"],
                      "ep_fraction": hand["ep_fraction"], "best_epoch": res["best_epoch"]}
        print(f"{name}: valid AUC {res['valid_auc']:.4f}, test AUC {res['test_auc']:.4f}, EP "
              f"{hand['ep_fraction']:.1%} (control {rows['control']['test_auc']:.4f})", flush=True)
    out = ROOT / "bench" / "results" / f"layouts_{args.run.name}{args.tag}.json"
    write_text_atomic(out, json.dumps({
        "date": dt.date.today().isoformat(), "command": "python bench/layout_probe.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
                   f"{args.threads} threads", "run": str(args.run), "layouts": rows}, indent=2))


if __name__ == "__main__":
    main()
