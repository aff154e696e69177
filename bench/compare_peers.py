"""Peer comparison: recnas against FuxiCTR 2.3.10, DeepCTR-Torch 0.3.0 and a bare PyTorch loop, side by side.

DeepFM, DCNv2 and FM, trained in one run, alternating (for seed: for model: for library), each run its own
subprocess, on the same split with the same setting (shared/reference/PEERS.md): embedding dim 10, MLP
400-400-400 ReLU dropout 0.2 without batch norm where the model has one (DCNv2: 3 cross layers beside the same
MLP, FuxiCTR's default "parallel"), Adam lr 1e-3, batch 4096, FuxiCTR's `embedding_regularizer: 0.1` (0.1/2 *
||W||^2 over the whole embedding and first-order tables, every step), at most 30 epochs, FuxiCTR's plateau
rule (valid AUC; a bad epoch multiplies the lr by 0.1; 2 in a row stop), test scored with the best-validation
weights, 2 threads. Per run: test AUC and logloss, epochs, train samples/s = train rows x epochs / training
time with evaluation timed apart. The bare loop (DeepFM only) is the speed ceiling.

    .venv/bin/python bench/compare_peers.py --setup        # once: the peers venv in bench/.peers/venv
    .venv/bin/python bench/compare_peers.py [--write-md]   # the whole comparison (hours on 2 cores)
    .venv/bin/python bench/compare_peers.py --max-train-rows 20000 --epochs 1 --seeds 2026   # smoke test

Writes bench/results/compare_peers.json (after every run, so a stopped benchmark keeps what it measured) and
prints a markdown table; --write-md appends it to bench/log/unsorted.md. The driver needs only the standard library;
peers run in bench/.peers/venv, recnas through `.venv/bin/recnas train`, the bare loop in `.venv/bin/python`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PEERS_SRC = BENCH / "peers"
WORK = BENCH / ".peers"
PEERS_VENV = WORK / "venv"
RECNAS_PY = ROOT / ".venv" / "bin" / "python"
RECNAS_CLI = ROOT / ".venv" / "bin" / "recnas"
DEFAULT_DATA = Path("/work/shared/data/derived/frappe_full")
DEFAULT_OUT = BENCH / "results" / "compare_peers.json"
BENCH_MD = ROOT / "bench" / "log" / "unsorted.md"
MD_HEADING = "## Peer comparison (bench/compare_peers.py)"

sys.path.insert(0, str(PEERS_SRC))
import setup_env  # noqa: E402  (bench/peers/setup_env.py: stdlib only)

LIBS = ("recnas", "fuxictr", "deepctr", "bare")
MODELS = ("deepfm", "dcnv2", "fm")
LIB_NAMES = {"recnas": "recnas", "fuxictr": "FuxiCTR", "deepctr": "DeepCTR-Torch", "bare": "bare PyTorch"}
PEER_LIBS = ("fuxictr", "deepctr")  # "best peer" for the AUC goal; the bare loop is the speed ceiling only
SETTING = {
    "batch_size": 4096, "embedding_dim": 10, "mlp": [400, 400, 400], "dropout": 0.2, "cross_layers": 3,
    "lr": 1e-3, "embedding_l2": 0.1, "patience": 2, "lr_factor": 0.1, "min_lr": 1e-6, "threads": 2,
}
GOALS = {"auc_margin": 0.001, "vs_fuxictr": 1.5, "vs_bare": 0.9}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="create the peers venv (idempotent) and exit")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of deepfm,dcnv2,fm")
    ap.add_argument("--libs", default=",".join(LIBS), help="comma-separated subset of recnas,fuxictr,deepctr,bare")
    ap.add_argument("--seeds", default="2026,2027,2028", help="comma-separated seeds")
    ap.add_argument("--epochs", type=int, default=30, help="at most this many epochs (early stopping may end sooner)")
    ap.add_argument("--max-train-rows", type=int, default=None, help="use only the first N train rows (smoke tests)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.csv, valid.csv, test.csv")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    ap.add_argument("--write-md", action="store_true", help=f"append to bench/log/unsorted.md ({MD_HEADING!r})")
    args = ap.parse_args(argv)
    args.data = args.data.resolve()
    args.models = _choices(args.models, MODELS, "--models")
    args.libs = _choices(args.libs, LIBS, "--libs")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 2026,2027")
    if not args.seeds:
        ap.error("--seeds: give at least one seed")
    if args.epochs < 1:
        ap.error("--epochs must be >= 1")
    if args.max_train_rows is not None and args.max_train_rows < 1:
        ap.error("--max-train-rows must be >= 1")
    return args


def _choices(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    picked = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in picked if s not in allowed]
    if bad or not picked:
        raise SystemExit(f"{flag} {text!r}: choose from {','.join(allowed)}")
    return list(dict.fromkeys(picked))


# ---------------------------------------------------------------------------------------------- checks


def check_ready(args: argparse.Namespace) -> None:
    for split in ("train", "valid", "test"):
        if not (args.data / f"{split}.csv").is_file():
            raise SystemExit(f"--data {args.data}: {split}.csv not found (expected train.csv, valid.csv, test.csv)")
    if any(lib in PEER_LIBS for lib in args.libs) and not setup_env.is_ready(PEERS_VENV):
        raise SystemExit(f"the peers venv is not set up ({PEERS_VENV}): run `{Path(sys.executable).name} "
                         "bench/compare_peers.py --setup` first, or leave fuxictr,deepctr out of --libs")
    if "recnas" in args.libs or "bare" in args.libs:
        if not RECNAS_PY.is_file():
            raise SystemExit(f"{RECNAS_PY} not found: create the recnas venv first (see README)")
    if "recnas" in args.libs:
        ok = RECNAS_CLI.is_file() and subprocess.run([str(RECNAS_CLI), "train", "--help"], capture_output=True,
                                                     check=False).returncode == 0
        if not ok:
            raise SystemExit("`recnas train` is not available in .venv (is recnas installed with its train "
                             "command?). To compare the others meanwhile, leave it out: --libs fuxictr,deepctr,bare")
    if "bare" in args.libs and "deepfm" not in args.models:
        print("note: the bare loop is DeepFM only; with --models without deepfm it does not run", flush=True)


def count_rows(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b"")) - 1


# ---------------------------------------------------------------------------------------------- runs


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["RECNAS_CACHE_DIR"] = str(WORK / "cache" / "recnas")
    env["RAY_AUTH_MODE"] = "disabled"  # Ray's token warning (FuxiCTR's loaders run Ray locally)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("VIRTUAL_ENV", None)
    return env


def recnas_command(args: argparse.Namespace, model: str, seed: int, run_dir: Path) -> list[str]:
    s = SETTING
    sets = [f"seed={seed}", f"threads={s['threads']}", f"model.embedding_dim={s['embedding_dim']}"]
    if model in ("deepfm", "dcnv2"):
        sets += [f"model.mlp=[{','.join(map(str, s['mlp']))}]", f"model.dropout={s['dropout']}",
                 "model.batch_norm=false"]
    if model == "dcnv2":
        sets.append(f"model.cross_layers={s['cross_layers']}")
    sets += [f"trainer.epochs={args.epochs}", f"trainer.batch_size={s['batch_size']}", "trainer.optimizer=adam",
             f"trainer.lr={s['lr']}", f"trainer.embedding_l2={s['embedding_l2']}",
             f"trainer.patience={s['patience']}", f"trainer.reduce_lr_factor={s['lr_factor']}"]
    if args.max_train_rows is not None:
        sets.append(f"lab.max_train_rows={args.max_train_rows}")
    cmd = [str(RECNAS_CLI), "train", "--data", str(args.data), "--model", model, "--out", str(run_dir / "recnas"),
           "--quiet"]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def worker_command(args: argparse.Namespace, lib: str, model: str, seed: int, run_dir: Path) -> list[str]:
    spec = {**SETTING, "model": model, "seed": seed, "epochs": args.epochs, "data": str(args.data),
            "max_train_rows": args.max_train_rows, "cache": str(WORK / "cache"), "run_dir": str(run_dir)}
    python = RECNAS_PY if lib == "bare" else setup_env.venv_python(PEERS_VENV)
    return [str(python), str(PEERS_SRC / f"run_{lib}.py"), "--spec", json.dumps(spec),
            "--out", str(run_dir / "result.json")]


def lib_version(lib: str, versions: dict) -> str:
    key = {"recnas": "recnas", "fuxictr": "fuxictr", "deepctr": "deepctr_torch"}.get(lib)
    if key is None:
        return "-"
    return str(versions.get(key, "?"))


def run_one(args: argparse.Namespace, lib: str, model: str, seed: int, batch_dir: Path, train_rows: int) -> dict:
    run_dir = batch_dir / f"{lib}-{model}-{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if lib == "recnas":
        cmd = recnas_command(args, model, seed, run_dir)
    else:
        cmd = worker_command(args, lib, model, seed, run_dir)
    log_path = run_dir / "log.txt"
    t = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n\n")
        log.flush()
        rc = subprocess.run(cmd, cwd=ROOT, env=child_env(SETTING["threads"]), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, check=False).returncode
    wall = time.perf_counter() - t
    record: dict = {"lib": lib, "model": model, "seed": seed, "wall_seconds": wall, "log": str(log_path)}
    result_path = run_dir / ("recnas/metrics.json" if lib == "recnas" else "result.json")
    if rc != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        return {**record, "ok": False, "error": f"exit code {rc}", "log_tail": tail}
    res = json.loads(result_path.read_text())
    rows = int(res.get("train_rows") or train_rows)
    train_s = float(res["train_seconds"])
    record.update({
        "ok": True, "test_auc": res["test_auc"], "test_logloss": res["test_logloss"],
        "valid_auc": res.get("valid_auc"), "epochs": int(res["epochs"]), "train_rows": rows,
        "train_seconds": train_s, "eval_seconds": res.get("eval_seconds"), "test_seconds": res.get("test_seconds"),
        "train_samples_per_s": rows * int(res["epochs"]) / train_s,
        "params": res.get("params"), "embedding_params": res.get("embedding_params"),
        "preprocess_seconds": res.get("preprocess_seconds"), "preprocess_reused": res.get("preprocess_reused"),
        "versions": res.get("versions", {}),
        "history": res.get("history"), "notes": res.get("notes"),
    })
    record["version"] = lib_version(lib, record["versions"])
    if lib == "recnas":
        record["reported_train_samples_per_s"] = res.get("train_samples_per_s")
        record["best_epoch"] = res.get("best_epoch")
        train_log = run_dir / "recnas" / "train_log.jsonl"
        if train_log.is_file():
            record["history"] = [json.loads(line) for line in train_log.read_text().splitlines() if line.strip()]
    return record


# ---------------------------------------------------------------------------------------------- summary


def mlp_flops(n_fields: int) -> dict:
    """FLOPs per sample of the DeepFM MLP: forward = 2 * sum(in * out) over its Linear layers; training ~ 3x."""
    dims = [n_fields * SETTING["embedding_dim"], *SETTING["mlp"], 1]
    forward = 2 * sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=True))
    return {"layers": dims, "forward_flops_per_sample": forward, "train_flops_per_sample": 3 * forward}


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def summarize(records: list[dict], models: list[str], libs: list[str], n_fields: int) -> dict:
    groups: dict = {}
    for model in models:
        for lib in libs:
            runs = [r for r in records if r["model"] == model and r["lib"] == lib and r.get("ok")]
            failed = sum(1 for r in records if r["model"] == model and r["lib"] == lib and not r.get("ok"))
            if not runs and not failed:
                continue
            groups[f"{model}/{lib}"] = {
                "model": model, "lib": lib, "runs": len(runs), "failed": failed,
                "version": runs[0]["version"] if runs else "?",
                "test_auc": _mean([r["test_auc"] for r in runs]),
                "test_auc_per_seed": {str(r["seed"]): r["test_auc"] for r in runs},
                "test_logloss": _mean([r["test_logloss"] for r in runs]),
                "epochs": _mean([r["epochs"] for r in runs]),
                "train_samples_per_s": _mean([r["train_samples_per_s"] for r in runs]),
                "eval_seconds": _mean([r["eval_seconds"] for r in runs if r.get("eval_seconds") is not None]),
            }
    goals: dict = {}
    for model in models:
        rec = groups.get(f"{model}/recnas")
        if not rec or not rec["runs"]:
            continue
        g: dict = {}
        peers = [(groups[f"{model}/{p}"]["test_auc"], p) for p in PEER_LIBS
                 if groups.get(f"{model}/{p}", {}).get("runs")]
        if peers:
            best_auc, best_lib = max(peers)
            g["auc"] = {"recnas": rec["test_auc"], "best_peer": best_lib, "best_peer_auc": best_auc,
                        "diff": rec["test_auc"] - best_auc,
                        "met": rec["test_auc"] >= best_auc - GOALS["auc_margin"]}
        for lib in ("fuxictr", "deepctr", "bare"):
            other = groups.get(f"{model}/{lib}")
            if other and other["runs"]:
                ratio = rec["train_samples_per_s"] / other["train_samples_per_s"]
                entry: dict = {"ratio": ratio}
                if lib == "fuxictr":
                    entry.update(goal=GOALS["vs_fuxictr"], met=ratio >= GOALS["vs_fuxictr"])
                if lib == "bare":
                    entry.update(goal=GOALS["vs_bare"], met=ratio >= GOALS["vs_bare"])
                g[f"speed_vs_{lib}"] = entry
        goals[model] = g
    flops = mlp_flops(n_fields)
    gflops = {}
    for lib in libs:
        grp = groups.get(f"deepfm/{lib}")
        if grp and grp["runs"]:
            gflops[lib] = flops["train_flops_per_sample"] * grp["train_samples_per_s"] / 1e9
    return {"groups": groups, "goals": goals, "deepfm_mlp": {**flops, "achieved_gflops_per_s": gflops}}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _met(flag: bool | None) -> str:
    return "-" if flag is None else ("met" if flag else "**not met**")


def markdown(summary: dict, meta: dict) -> str:
    groups, goals = summary["groups"], summary["goals"]
    lines = [f"Data `{meta['data']}` ({meta['train_rows']:,} train rows), seeds {', '.join(map(str, meta['seeds']))}, "
             f"at most {meta['epochs']} epochs; means over seeds. `recnas ÷ lib` = recnas train samples/s over the "
             "library's.", "",
             "| model | library | version | runs | test AUC | test logloss | epochs | train samples/s | eval s/run "
             "| recnas ÷ lib (samples/s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for g in groups.values():
        rec = groups.get(f"{g['model']}/recnas")
        ratio = None
        if rec and rec["runs"] and g["runs"] and g["lib"] != "recnas":
            ratio = rec["train_samples_per_s"] / g["train_samples_per_s"]
        runs = f"{g['runs']}" + (f" ({g['failed']} failed)" if g["failed"] else "")
        lines.append(f"| {g['model']} | {LIB_NAMES[g['lib']]} | {g['version']} | {runs} | {_fmt(g['test_auc'], '.4f')} "
                     f"| {_fmt(g['test_logloss'], '.4f')} | {_fmt(g['epochs'], '.1f')} "
                     f"| {_fmt(g['train_samples_per_s'], ',.0f')} | {_fmt(g['eval_seconds'], '.1f')} "
                     f"| {_fmt(ratio, '.2f')} |")
    if goals:
        lines += ["", f"| model | test AUC: recnas − best peer (goal ≥ −{GOALS['auc_margin']}) "
                      f"| samples/s: recnas ÷ FuxiCTR (goal ≥ {GOALS['vs_fuxictr']}) "
                      f"| samples/s: recnas ÷ DeepCTR-Torch | samples/s: recnas ÷ bare (goal ≥ {GOALS['vs_bare']}) |",
                  "|---|---|---|---|---|"]
        for model, g in goals.items():
            auc = g.get("auc")
            auc_txt = "-" if auc is None else (f"{auc['diff']:+.4f} (best peer {LIB_NAMES[auc['best_peer']]} "
                                               f"{auc['best_peer_auc']:.4f}): {_met(auc['met'])}")
            cells = []
            for lib in ("fuxictr", "deepctr", "bare"):
                e = g.get(f"speed_vs_{lib}")
                cells.append("-" if e is None else f"{e['ratio']:.2f}" + (f": {_met(e['met'])}" if "met" in e else ""))
            lines.append(f"| {model} | {auc_txt} | {' | '.join(cells)} |")
    mlp = summary["deepfm_mlp"]
    if mlp["achieved_gflops_per_s"]:
        per = ", ".join(f"{LIB_NAMES[lib]} {v:.1f}" for lib, v in mlp["achieved_gflops_per_s"].items())
        lines += ["", f"DeepFM MLP {'-'.join(map(str, mlp['layers']))}: {mlp['forward_flops_per_sample'] / 1e6:.2f} "
                      f"MFLOP/sample forward (2·Σ in·out), ≈{mlp['train_flops_per_sample'] / 1e6:.2f} MFLOP/sample "
                      f"training (3×); achieved GFLOP/s = that × train samples/s: {per}."]
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cpus ({cpu}), Linux {platform.release()}"


def write_md(table: str, meta: dict) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v != "-")
    block = f"### {meta['date']}: `{meta['command']}`\n\nMachine: {meta['machine']}; {versions}.\n\n{table}"
    text = BENCH_MD.read_text() if BENCH_MD.exists() else "# Benchmarks\n"
    start = text.find(MD_HEADING)
    if start < 0:
        text = text.rstrip("\n") + f"\n\n{MD_HEADING}\n\n{block}"
    else:  # at the end of our section: before the next "## " heading, if any
        nxt = text.find("\n## ", start + len(MD_HEADING))
        head, tail = (text, "") if nxt < 0 else (text[:nxt + 1], text[nxt + 1:])
        text = head.rstrip("\n") + "\n\n" + block + ("\n" + tail if tail else "")
    BENCH_MD.write_text(text)
    print(f"appended to {BENCH_MD} under {MD_HEADING!r}")


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.setup:
        setup_env.setup(PEERS_VENV)
        return
    check_ready(args)
    plan = [(seed, model, lib) for seed in args.seeds for model in args.models for lib in args.libs
            if not (lib == "bare" and model != "deepfm")]
    if not plan:
        raise SystemExit("nothing to run: the bare loop is DeepFM only; pick other --libs or --models")
    with open(args.data / "train.csv", encoding="utf-8") as fh:
        n_fields = len(fh.readline().strip().split(",")) - 1
    total_rows = count_rows(args.data / "train.csv")
    train_rows = min(total_rows, args.max_train_rows) if args.max_train_rows else total_rows
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    batch_dir = WORK / "runs" / stamp
    command = shlex.join(["python", "bench/compare_peers.py", *(sys.argv[1:] if argv is None else argv)])
    meta = {"date": dt.date.today().isoformat(), "command": command, "machine": machine(),
            "data": str(args.data), "train_rows": train_rows, "n_fields": n_fields, "seeds": args.seeds,
            "models": args.models, "libs": args.libs, "epochs": args.epochs, "max_train_rows": args.max_train_rows,
            "setting": SETTING, "goals": GOALS, "runs_dir": str(batch_dir), "versions": {}}
    print(f"{len(plan)} runs, logs in {batch_dir}", flush=True)
    records: list[dict] = []
    for i, (seed, model, lib) in enumerate(plan, 1):
        print(f"[{i}/{len(plan)}] {LIB_NAMES[lib]} {model} seed {seed} ...", end=" ", flush=True)
        rec = run_one(args, lib, model, seed, batch_dir, train_rows)
        records.append(rec)
        if rec["ok"]:
            meta["versions"].setdefault(LIB_NAMES[lib], rec["version"])
            torch_v = rec["versions"].get("torch")
            if torch_v:
                meta["versions"].setdefault("torch", torch_v)
            print(f"test AUC {rec['test_auc']:.4f}, logloss {rec['test_logloss']:.4f}, {rec['epochs']} epochs, "
                  f"{rec['train_samples_per_s']:,.0f} train samples/s (train {rec['train_seconds']:.1f} s, "
                  f"eval {_fmt(rec['eval_seconds'], '.1f')} s, wall {rec['wall_seconds']:.1f} s)", flush=True)
        else:
            print(f"FAILED ({rec['error']}); log {rec['log']}:\n    " + "\n    ".join(rec["log_tail"]), flush=True)
        summary = summarize(records, args.models, args.libs, n_fields)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "summary": summary, "runs": records}, indent=1) + "\n")
    table = markdown(summary, meta)
    print()
    print(table)
    print(f"results: {args.out}")
    if args.write_md:
        write_md(table, meta)
    if not all(r["ok"] for r in records):
        sys.exit(1)


if __name__ == "__main__":
    main()
