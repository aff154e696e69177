"""Planted against found: a search's decisions next to the truth of a `recnas synth` dataset (its truth.json).

Two views, each for the methods that decide it (`SearchMethod.field_memory` / `kept_pairs`):
- memory: floats stored per id of every sized field, with its planted role. The property the embedding-size
  searches must show: the fields of the highest-rank planted pair store more per id than every noise field.
- pairs: the planted pairs against the kept ones. The property: every planted pair kept, no pair with a noise
  field kept.
The report shows both where the dataset has a truth.json; `bench/known_answers.py` counts the seeds on which
the properties hold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recnas.methods.base import SearchMethod


def read_truth(data_path: str | Path | None) -> dict[str, Any] | None:
    """The dataset folder's truth.json, or None (real data, a moved folder, an unreadable file)."""
    if data_path is None:
        return None
    try:
        truth = json.loads((Path(data_path) / "truth.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    needed = ("interactions", "interaction_ranks", "noise_fields", "informative_fields")
    return truth if isinstance(truth, dict) and all(k in truth for k in needed) else None


def roles(truth: dict[str, Any]) -> dict[str, str]:
    """Each field's planted role: 'rank-R interaction' (the highest it is part of), 'informative' or 'noise'."""
    out = {f: "informative" for f in truth["informative_fields"]}
    out.update({f: "noise" for f in truth["noise_fields"]})
    best: dict[str, int] = {}
    for fields, rank in zip(truth["interactions"], truth["interaction_ranks"], strict=True):
        for f in fields:
            best[f] = max(best.get(f, 0), int(rank))
    out.update({f: f"rank-{r} interaction" for f, r in best.items()})
    return out


def strongest_pair(truth: dict[str, Any]) -> list[str]:
    """The planted two-field interaction of the highest rank (the one that needs the most width)."""
    pairs = [(int(r), f) for f, r in zip(truth["interactions"], truth["interaction_ranks"], strict=True)
             if len(f) == 2]
    return list(max(pairs, key=lambda x: x[0])[1]) if pairs else []


def memory_view(truth: dict[str, Any], memory: dict[str, float]) -> dict[str, Any]:
    """Floats per id with roles, and whether the strongest pair's fields store more than every noise field."""
    pair = [f for f in strongest_pair(truth) if f in memory]
    noise = [f for f in truth["noise_fields"] if f in memory]
    holds = bool(pair) and bool(noise) and min(memory[f] for f in pair) > max(memory[f] for f in noise)
    role = roles(truth)
    return {"per_field": {f: {"floats_per_id": round(float(v), 4), "role": role.get(f, "informative")}
                          for f, v in memory.items()},
            "pair": pair, "noise_fields": noise, "holds": holds,
            "margin": (min(memory[f] for f in pair) - max(memory[f] for f in noise)) if pair and noise else None}


def pairs_view(truth: dict[str, Any], kept: list[list[str]]) -> dict[str, Any]:
    """Planted pairs kept or missed, and the kept pairs with a noise field."""
    planted = [sorted(f) for f in truth["interactions"] if len(f) == 2]
    found = {frozenset(p) for p in kept}
    noise = set(truth["noise_fields"])
    with_noise = [sorted(p) for p in found if p & noise]
    recovered = [p for p in planted if frozenset(p) in found]
    return {"planted": planted, "recovered": recovered, "kept": len(found), "with_noise_field": sorted(with_noise),
            "holds": len(recovered) == len(planted) and not with_noise}


def planted_against_found(method: SearchMethod, arch: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Both views that `method` decides (an empty dict when it decides neither)."""
    out: dict[str, Any] = {}
    memory = method.field_memory(arch)
    if memory:
        out["memory"] = memory_view(truth, memory)
    kept = method.kept_pairs(arch)
    if kept is not None:
        out["pairs"] = pairs_view(truth, kept)
    return out


def summary_lines(view: dict[str, Any]) -> list[str]:
    """One line per view, for the CLI and the demo."""
    lines = []
    if "memory" in view:
        m = view["memory"]
        per = m["per_field"]
        pair = ", ".join(f"{f} {per[f]['floats_per_id']:g}" for f in m["pair"])
        noise = ", ".join(f"{f} {per[f]['floats_per_id']:g}" for f in m["noise_fields"])
        lines.append(f"planted against found: floats per id of the planted pair {pair}; of the noise fields {noise} "
                     f"({'the pair stores more' if m['holds'] else 'NOT more than every noise field'})")
    if "pairs" in view:
        p = view["pairs"]
        extra = f"; {len(p['with_noise_field'])} kept pair(s) with a noise field" if p["with_noise_field"] else ""
        lines.append(f"planted against found: {len(p['recovered'])} of {len(p['planted'])} planted pairs kept "
                     f"({p['kept']} kept in all){extra}")
    return lines


def search_synthetic(config: str | Path, seed: int, work: str | Path, overrides: Sequence[str] = (),
                     rows: int = 100_000, shuffle_fields: bool = False) -> dict[str, Any]:
    """Write `recnas synth` data of `seed`, run the config's search stage on it (no retrain): the planted view.

    The data, cache and search folders live under `work` and are reused: a finished search is read back. What the
    known-answer checks over seeds run (the slow test suite and `bench/known_answers.py`).
    """
    from recnas.data.synthetic import SynthConfig, write_synthetic
    from recnas.experiment.config import load_config
    from recnas.experiment.run import load_splits, set_seed
    from recnas.experiment.search import read_arch, search_stage
    from recnas.methods import method_of

    work = Path(work)
    data = work / "data" / f"synth{seed}-{rows}{'-shuffled' if shuffle_fields else ''}"
    if not (data / "truth.json").is_file():
        write_synthetic(data, SynthConfig(rows=rows, seed=seed, shuffle_fields=shuffle_fields))
    cfg = load_config(config, [f"data.path={data}", f"data.cache_dir={work / 'cache'}", "trainer.progress=false",
                               *overrides])
    method = method_of(cfg)
    folder = work / "runs" / "-".join([Path(config).stem, data.name, *overrides]).replace("/", "_")
    if (folder / "arch.json").is_file():
        arch = read_arch(folder / "arch.json")
    else:
        set_seed(cfg.seed, cfg.threads)
        arch = search_stage(method, load_splits(cfg), folder)
    truth = read_truth(data)
    assert truth is not None
    return {"method": method.name, "seed": seed, "shuffled": shuffle_fields, "overrides": list(overrides),
            "search_seconds": arch.get("search_seconds"), **planted_against_found(method, arch, truth)}
