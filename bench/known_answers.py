"""Known answers over seeds: on `recnas synth` data of seeds 1-10, does each search find what was planted?

For every seed the built-in synthetic data (100,000 rows, the default fields: a rank-8 pair c1 x c2 on the two
largest fields, a rank-2 pair c5 x c6, noise fields c7, c8 and n2) is written, and each method's shipped config
(`configs/<method>_synth.yaml`, nothing changed but the data) runs its search stage. The planted-truth view
(`recnas.experiment.planted`) then says, per method and seed:
- embedding-size searches (AutoDim, NIS, ESAPN, joint): whether the rank-8 pair's fields store more floats per id
  than every noise field (and the margin);
- interaction searches (AutoFIS, joint): whether both planted pairs are kept and no pair with a noise field.
Goal (issue 26): the memory property on >= 8 of 10 seeds for AutoDim, NIS and ESAPN. Searches only: no retrain.
Writes bench/results/known_answers[<tag>].json; `--table` prints the markdown table of bench/README.md.

    .venv/bin/python bench/known_answers.py [--methods autodim,nis,esapn,autofis] [--seeds 1-10] [--tag T]
    .venv/bin/python bench/known_answers.py --table [--tag T]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
from pathlib import Path

from zoo_bench import mean_sd

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "known"


def seeds_arg(text: str) -> list[int]:
    """'1-10' or '1,3,5'."""
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def one(method_name: str, seed: int, extra: list[str]) -> dict:
    """Search `method_name` on the seed's data; the planted-truth view and the search's seconds."""
    from recnas.experiment.planted import search_synthetic

    return search_synthetic(ROOT / "configs" / f"{method_name}_synth.yaml", seed, WORK, extra)


def table(results: list[dict]) -> str:
    """Markdown: per method, seeds where each property holds, and the memory margins."""
    lines = ["| method | pair stores more per id than every noise field | both planted pairs kept, no noise pair | "
             "margin (floats per id), mean ± sd | failing seeds |", "|---|---|---|---|---|"]
    by: dict[str, list[dict]] = {}
    for r in results:
        by.setdefault(r["method"], []).append(r)
    for m, rs in by.items():
        mem = [r["memory"] for r in rs if "memory" in r]
        pairs = [r["pairs"] for r in rs if "pairs" in r]
        margins = [x for x in mem if x["margin"] is not None]
        mean, sd = mean_sd(margins, "margin") if margins else (float("nan"), float("nan"))
        failing = sorted({r["seed"] for r in rs if not all(r[k]["holds"] for k in ("memory", "pairs") if k in r)})
        def share(views: list[dict]) -> str:
            return f"{sum(v['holds'] for v in views)} of {len(views)}" if views else "-"

        spread = f"{mean:+.2f} ± {sd:.2f}" if margins else "-"
        lines.append(f"| {m} | {share(mem)} | {share(pairs)} | {spread} | {', '.join(map(str, failing)) or 'none'} |")
    return "\n".join(lines)


def main() -> None:
    """Run the cells (each in its own process, so one method's memory and threads do not touch the next)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="autodim,nis,esapn,autofis")
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--tag", default="")
    ap.add_argument("--set", action="append", default=[], help="a config override for every cell")
    ap.add_argument("--table", action="store_true", help="print the markdown table of the results file")
    ap.add_argument("--cell", nargs=2, metavar=("METHOD", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = ROOT / "bench" / "results" / f"known_answers{args.tag}.json"
    if args.cell:
        print(json.dumps(one(args.cell[0], int(args.cell[1]), args.set)))
        return
    if args.table:
        print(table(json.loads(out.read_text())["results"]))
        return
    results = []
    for seed in seeds_arg(args.seeds):
        for m in args.methods.split(","):
            cmd = [sys.executable, __file__, "--cell", m, str(seed), *[f"--set={s}" for s in args.set]]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode:
                raise SystemExit(f"{m} seed {seed} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(m, seed, {k: r[k]["holds"] for k in ("memory", "pairs") if k in r}, f"{r['search_seconds']} s",
                  flush=True)
            commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, check=False).stdout.strip()
            out.write_text(json.dumps({"date": dt.date.today().isoformat(), "commit": commit,
                                       "machine": platform.platform(), "overrides": args.set,
                                       "results": results}, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
