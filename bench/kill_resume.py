"""Kill -9 at random points of `recnas train` and of each stage of `recnas search`; every rerun must resume.

For each of four targets (train; a search's search, retrain and baseline stages) the script first runs the command
once uninterrupted (the reference), then starts it again in a fresh folder and kills it with SIGKILL at a random
moment inside the target stage, `--kills` times (restarting the same command after each kill), and lets the last
start finish. It checks that each restart said it resumed once a checkpoint existed, that no restart lost more than
the epoch in progress (the checkpoint's epoch before a kill is where the next start resumes), and that the end
is byte-identical to the reference: model.safetensors of the run (train), of retrain/ and of baseline/, and the
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
         "--set", "trainer.patience=20", "--set", "threads=1", "--set", "trainer.progress=false"]


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
                  "--set", "trainer.epochs=8", *common],
        "search": [*PY, "search", str(ROOT / "configs" / "autodim_synth.yaml"), "--data", str(data), "--out", str(run),
                   "--set", "search.epochs=8", "--set", "search.warmup_epochs=2", "--set", "trainer.epochs=8",
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
    cmd_name, started, ckpt_name, compare = STAGES[stage]
    ref = work / f"ref-{cmd_name}"
    t0 = time.perf_counter()
    if not all((ref / c).exists() for c in compare):
        subprocess.run(commands(data, work / "cache", ref)[cmd_name], check=True, capture_output=True)
    reference_seconds = time.perf_counter() - t0
    run = work / f"killed-{stage}"
    shutil.rmtree(run, ignore_errors=True)
    cmd = commands(data, work / "cache", run)[cmd_name]
    done, records = 0, []
    while done < kills:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while started is not None and not (run / started).exists() and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is not None or (run / STAGES[stage][3][0]).exists():
            break  # the stage finished before a kill: no more kill points in it
        time.sleep(rng.uniform(0.2, max(reference_seconds / 6, 1.0)))
        before = checkpoint_epoch(run / ckpt_name)
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0]
        if (run / compare[0]).exists():
            break
        done += 1
        records.append({"kill": done, "checkpoint_epoch_at_kill": before, "output": out})
    final = subprocess.run(cmd, capture_output=True, text=True)
    outputs = [r["output"] for r in records[1:]] + [final.stdout]  # what the start after each kill printed
    resumed_as_expected = []
    for r, after in zip(records, outputs, strict=True):  # a start after a kill continues from that checkpoint
        k = r["checkpoint_epoch_at_kill"]
        resumed_as_expected.append(k is None or f"after epoch {k}" in after or f"in epoch {k + 1}" in after)
    ok = final.returncode == 0 and all(same(ref / c, run / c) for c in compare)
    return {"stage": stage, "kills": done, "identical": ok, "returncode": final.returncode,
            "checkpoints_at_kills": [r["checkpoint_epoch_at_kill"] for r in records],
            "resumed_from_the_last_checkpoint": all(resumed_as_expected),
            "reference_seconds": round(reference_seconds, 1)}


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
        print(f"{r['stage']}: {r['kills']} kills, checkpoint epochs at the kills {r['checkpoints_at_kills']}, "
              f"every restart resumed from the last checkpoint: {r['resumed_from_the_last_checkpoint']}, final run rc "
              f"{r['returncode']}, byte-identical to the uninterrupted run: {r['identical']}")
    out = ROOT / "bench" / "results" / "kill_resume.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
                               "results": results}, indent=2))
    if not all(r["identical"] and r["resumed_from_the_last_checkpoint"] and r["kills"] == args.kills
               for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
