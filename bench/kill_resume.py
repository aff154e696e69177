"""Kill -9 at random points of `recnas train` and of each stage of `recnas search`; every rerun must resume.

For each of four targets (train; a search's search, retrain and baseline stages) the script first runs the command
once uninterrupted (the reference), then starts it again in a fresh folder and kills it with SIGKILL at a random
moment inside the target stage, `--kills` times (restarting the same command after each kill), and lets the last
start finish. Each kill falls at a random point of the epoch after the one the start resumed from, so every start
must have resumed (it says so) and gone on; a kill loses at most the epoch in progress. The end must be
byte-identical to the reference: model.safetensors of the run (train), of retrain/ and of baseline/, and the
search's arch.json (its seconds aside). Small synthetic data; about ten minutes on 2 cores.

    .venv/bin/python bench/kill_resume.py [--kills 10] [--seed 0] [--work bench/work/kill_resume]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PY = [sys.executable, "-m", "recnas"]
SMALL = ["--set", "model.embedding_dim=8", "--set", "model.mlp=[64,64]", "--set", "trainer.batch_size=512",
         "--set", "trainer.patience=40", "--set", "threads=1", "--set", "trainer.progress=false"]


def checkpoint_epoch(path: Path) -> int | None:
    """The last finished epoch a checkpoint holds (None: no readable checkpoint)."""
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - absent or being written
        return None


def commands(data: Path, cache: Path, run: Path) -> dict[str, list[str]]:
    common = ["--set", f"data.cache_dir={cache}", *SMALL]
    return {
        "train": [*PY, "train", "--data", str(data), "--model", "deepfm", "--out", str(run),
                  "--set", "trainer.epochs=30", *common],
        "search": [*PY, "search", str(ROOT / "configs" / "autodim_synth.yaml"), "--data", str(data), "--out", str(run),
                   "--set", "search.epochs=14", "--set", "search.warmup_epochs=2", "--set", "trainer.epochs=30",
                   *common],
    }


# stage -> (the command, the file whose existence says the stage started, its checkpoint, what must match)
STAGES = {
    "train": ("train", None, "checkpoint.pt", ["model.safetensors"]),
    "search": ("search", "data_key.txt", "search/checkpoint.pt", ["search/arch.json"]),
    "retrain": ("search", "search/arch.json", "retrain/checkpoint.pt", ["retrain/model.safetensors"]),
    "baseline": ("search", "retrain/metrics.json", "baseline/checkpoint.pt", ["baseline/model.safetensors"]),
}


def same(a: Path, b: Path) -> bool:
    if a.suffix == ".json":
        strip = lambda d: {k: v for k, v in d.items() if "seconds" not in k}  # noqa: E731
        return strip(json.loads(a.read_text())) == strip(json.loads(b.read_text()))
    return a.read_bytes() == b.read_bytes()


def run_stage(stage: str, data: Path, work: Path, kills: int, rng: random.Random) -> dict:
    """Reference run, then `kills` kills inside the stage, each after the run made progress past its checkpoint."""
    cmd_name, started, ckpt_name, compare = STAGES[stage]
    ref = work / f"ref-{cmd_name}"
    if not all((ref / c).exists() for c in compare):
        subprocess.run(commands(data, work / "cache", ref)[cmd_name], check=True, capture_output=True)
    run = work / f"killed-{stage}"
    shutil.rmtree(run, ignore_errors=True)
    cmd = commands(data, work / "cache", run)[cmd_name]
    ckpt = run / ckpt_name
    records = []
    while len(records) < kills:
        prev = checkpoint_epoch(ckpt) or 0
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # wait until this start has finished an epoch past the checkpoint it found: it resumed and went on
        while proc.poll() is None and not (run / compare[0]).exists() and (
                (started is not None and not (run / started).exists()) or (checkpoint_epoch(ckpt) or 0) <= prev):
            time.sleep(0.02)
        if proc.poll() is not None or (run / compare[0]).exists():
            proc.kill()
            proc.communicate()
            break  # the stage ended before this kill point: more epochs are needed for more kills
        time.sleep(rng.uniform(0.0, 0.6))  # a random point inside the next epoch
        at_kill = checkpoint_epoch(ckpt)
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0]
        records.append({"found": prev, "checkpoint_at_kill": at_kill,
                        "resumed": prev == 0 or f"after epoch {prev}" in out or f"in epoch {prev + 1}" in out})
    final = subprocess.run(cmd, capture_output=True, text=True)
    last = checkpoint_epoch(ckpt)  # gone after a clean end
    ok = final.returncode == 0 and all(same(ref / c, run / c) for c in compare)
    return {"stage": stage, "kills": len(records), "identical": ok, "returncode": final.returncode,
            "epochs_found_by_each_start": [r["found"] for r in records],
            "checkpoint_epoch_at_each_kill": [r["checkpoint_at_kill"] for r in records],
            "every_start_resumed": all(r["resumed"] for r in records), "checkpoint_left": last is not None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", default="train,search,retrain,baseline")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "kill_resume")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    data = args.work / "synth"
    if not (data / "train.csv").exists():
        subprocess.run([*PY, "synth", "--out", str(data), "--rows", "20000", "--seed", str(args.seed)], check=True,
                       capture_output=True)
    results = [run_stage(s, data, args.work, args.kills, rng) for s in args.stages.split(",")]
    for r in results:
        print(f"{r['stage']}: {r['kills']} kills; each start found the checkpoint of epoch "
              f"{r['epochs_found_by_each_start']} and resumed from it: {r['every_start_resumed']}; final run rc "
              f"{r['returncode']}, byte-identical to the uninterrupted run: {r['identical']}")
    out = ROOT / "bench" / "results" / "kill_resume.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
                               "results": results}, indent=2))
    if not all(r["identical"] and r["every_start_resumed"] and r["kills"] == args.kills for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
