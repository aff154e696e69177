"""Every bad input the reliability issue listed, run as a user would: the command, its exit code and the line it prints.

Builds each case from a small synthetic dataset in a temporary folder, runs the CLI in a subprocess and prints one
row per case (expected: exit 2 with one `error:` line naming the place, or exit 0 where the input is fine and the
result is right). Writes bench/results/bad_inputs.json. About two minutes on 2 cores.

    .venv/bin/python bench/bad_inputs.py
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = [sys.executable, "-m", "recnas"]
TINY = ["--set", "trainer.epochs=2", "--set", "model.embedding_dim=8", "--set", "model.mlp=[32]", "--quiet"]


def lines(p: Path) -> list[str]:
    return p.read_text().splitlines(keepends=True)


def set_cell(line: str, idx: int, value: str) -> str:
    parts = line.rstrip("\n").split(",")
    parts[idx] = value
    return ",".join(parts) + "\n"


def edit(folder: Path, split: str, fn: Callable[[list[str]], list[str]]) -> None:
    (folder / f"{split}.csv").write_text("".join(fn(lines(folder / f"{split}.csv"))))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="recnas_bad_"))
    base = tmp / "base"
    subprocess.run([*PY, "synth", "--out", str(base), "--rows", "4000", "--seed", "1"], check=True, capture_output=True)
    cache = ["--set", f"data.cache_dir={tmp / 'cache'}"]
    trained = tmp / "trained"
    subprocess.run([*PY, "train", "--data", str(base), "--model", "fm", "--out", str(trained), *TINY, *cache],
                   check=True, capture_output=True)

    def variant(name: str, change: Callable[[Path], None]) -> Path:
        d = tmp / name
        shutil.copytree(base, d)
        change(d)
        return d

    def train(d: Path, *extra: str) -> list[str]:
        return [*PY, "train", "--data", str(d), "--model", "fm", "--out", str(tmp / "runs" / d.name), *TINY, *cache,
                *extra]

    def damaged_weights(kind: str) -> Path:
        d = tmp / f"weights_{kind}"
        shutil.copytree(trained, d)
        w = d / "model.safetensors"
        if kind == "truncated":
            w.write_bytes(w.read_bytes()[:200])
        else:
            from safetensors.torch import load_file, save_file

            t = load_file(str(w))
            k = next(k for k, v in t.items() if v.is_floating_point())
            t[k][:] = float("nan")
            save_file(t, str(w))
        return d

    (tmp / "afile").write_text("x")

    def entry_is_a_file() -> Path:
        root = tmp / "cache_entry"
        subprocess.run([*PY, "data", "prepare", str(base), "--cache-dir", str(root)], check=True, capture_output=True)
        entry = next(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        shutil.rmtree(entry)
        entry.write_text("not a cache")
        return root

    nolabel = tmp / "nolabel.csv"
    nolabel.write_text("".join(ln.split(",", 1)[1] for ln in lines(base / "test.csv")))
    long_row = '"' + "|".join(str(i) for i in range(40000)) + '"'
    config = str(ROOT / "configs" / "autofis_synth.yaml")
    cases: list[tuple[str, list[str]]] = [
        ("truncated model.safetensors at predict",
         [*PY, "predict", str(damaged_weights("truncated")), str(base / "test.csv"), "--out", str(tmp / "p1.csv")]),
        ("--out that is an existing file (train)", [*PY, "train", "--data", str(base), "--model", "fm", "--out",
                                                    str(tmp / "afile"), *TINY, *cache]),
        ("--out that is an existing file (search)", [*PY, "search", config, "--data", str(base), "--out",
                                                     str(tmp / "afile"), "--quiet", *cache]),
        ("predict output path that is a folder", [*PY, "predict", str(trained), str(base / "test.csv"), "--out",
                                                  str(tmp)]),
        ("1e300 only in valid.csv", train(variant("huge_valid", lambda d: edit(
            d, "valid", lambda L: L[:5] + [set_cell(L[5], 9, "1e300")] + L[6:])))),
        ("RECNAS_CACHE_DIR that is a file", ["env", f"RECNAS_CACHE_DIR={tmp / 'afile'}", *PY, "data", "prepare",
                                             str(base)]),
        ("a cache entry that is a file", [*PY, "data", "prepare", str(base), "--cache-dir", str(entry_is_a_file())]),
        ("unclosed quote fusing two rows", train(variant("quote", lambda d: edit(
            d, "train", lambda L: L[:10] + [L[10].rstrip("\n")[:-1] + "\n"] + L[11:])))),
        ("unclosed quote, --on-bad-row skip", [*PY, "data", "prepare", str(tmp / "quote"), "--on-bad-row", "skip",
                                               "--cache-dir", str(tmp / "cache")]),
        ("one 40,000-token multi-valued row", [*PY, "data", "prepare", str(variant("longmv", lambda d: edit(
            d, "train", lambda L: L[:3] + [set_cell(L[3], 11, long_row)] + L[4:]))), "--cache-dir",
            str(tmp / "cache")]),
        ("train labels all 1", train(variant("all1", lambda d: edit(
            d, "train", lambda L: L[:1] + ["1" + ln[1:] for ln in L[1:]])))),
        ("NaN weights, file without labels",
         [*PY, "predict", str(damaged_weights("nan")), str(nolabel), "--out", str(tmp / "p2.csv")]),
        ("NaN weights, file with labels",
         [*PY, "predict", str(tmp / "weights_nan"), str(base / "test.csv"), "--out", str(tmp / "p3.csv")]),
        ("UTF-16 file", train(variant("utf16", lambda d: (d / "train.csv").write_bytes(
            (d / "train.csv").read_text().encode("utf-16"))))),
        ("binary file", train(variant("binary", lambda d: (d / "train.csv").write_bytes(bytes(range(256)) * 40)))),
        ("1e308 in a numerical field", train(variant("e308", lambda d: edit(
            d, "train", lambda L: L[:7] + [set_cell(L[7], 9, "1e308")] + L[8:])))),
        ("1e39 in a numerical field", train(variant("e39", lambda d: edit(
            d, "train", lambda L: L[:7] + [set_cell(L[7], 9, "1e39")] + L[8:])))),
        ("a CSV read with --format libfm", [*PY, "data", "inspect", str(base / "train.csv"), "--format", "libfm"]),
        ("name: ../../x in schema.yaml", [*PY, "data", "prepare", str(variant("badname", lambda d: (
            d / "schema.yaml").write_text(re.sub(r"(?m)^name: .*$", "name: ../../x",
                                                 (d / "schema.yaml").read_text())))),
            "--cache-dir", str(tmp / "cache")]),
        ("recnas --version", [*PY, "--version"]),
        ("train into a finished run of another config", [*PY, "train", "--data", str(base), "--model", "fm", "--out",
                                                         str(trained), *TINY, *cache, "--set", "trainer.lr=0.01"]),
    ]
    results = []
    for what, cmd in cases:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        out = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        said = [ln for ln in out if " values, more than its max_len" in ln or "error" in ln]  # the naming line
        last = said[-1] if said else out[-1] if out else ""
        traceback = "Traceback" in proc.stderr
        results.append({"case": what, "command": " ".join(str(c) for c in cmd).replace(str(tmp), "$TMP"),
                        "exit": proc.returncode, "line": last.replace(str(tmp), "$TMP"), "traceback": traceback,
                        "seconds": round(time.perf_counter() - t0, 1)})
        print(f"{what}: exit {proc.returncode}: {last.replace(str(tmp), '$TMP')[:300]}", flush=True)
    # two commands on one --out: the second stops at once; a killed holder's folder is taken over
    shared = tmp / "shared_run"
    long_train = [*PY, "train", "--data", str(base), "--model", "deepfm", "--out", str(shared), "--set",
                  "trainer.epochs=30", "--set", "trainer.patience=30", "--set", "trainer.progress=false", *cache]
    first = subprocess.Popen(long_train, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ((shared / ".lock").is_file() and (shared / ".lock").read_text()):
        time.sleep(0.05)
    t0 = time.perf_counter()
    second = subprocess.run(long_train, capture_output=True, text=True)
    waited = time.perf_counter() - t0
    line = second.stderr.strip().splitlines()[-1].replace(str(tmp), "$TMP")
    results.append({"case": "a second train on the same --out", "exit": second.returncode, "line": line,
                    "seconds": round(waited, 1), "traceback": "Traceback" in second.stderr})
    print(f"a second train on the same --out: exit {second.returncode} after {waited:.1f} s: {line}")
    first.send_signal(signal.SIGKILL)
    first.wait()
    third = subprocess.run(long_train, capture_output=True, text=True)  # the same command: takes over and resumes
    said = [ln for ln in third.stdout.splitlines() if "taking over" in ln]
    line = (said[0] if said else third.stdout.strip().splitlines()[-1]).replace(str(tmp), "$TMP")
    results.append({"case": "after the holder was killed", "exit": third.returncode, "line": line,
                    "traceback": "Traceback" in third.stderr})
    print(f"after the holder was killed (kill -9): exit {third.returncode}: {line}")
    (ROOT / "bench" / "results" / "bad_inputs.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "results": results}, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    if any(r["traceback"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
