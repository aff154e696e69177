"""The benchmark settings: one YAML per method and dataset under bench/configs, which `recnas search` runs as it is.

A dataset without its own `<method>_<dataset>.yaml` takes `<method>.yaml` (the settings not chosen on any dataset).
The scripts add what changes per run: seed, threads, trainer.epochs, data.path, the cache and the run's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "bench" / "configs"
DATA = ROOT.parent / "shared" / "data" / "derived"


def config_path(method: str, dataset: str) -> Path:
    """The YAML a cell runs: the dataset's own, else the method's."""
    own = CONFIGS / f"{method}_{dataset}.yaml"
    return own if own.is_file() else CONFIGS / f"{method}.yaml"


def bench_config(method: str, dataset: str, seed: int, threads: int, epochs: int, work: Path,
                 extra: list[str]) -> Any:
    """The cell's config: its YAML with this run's seed, threads, epochs, data and cache (then `extra`)."""
    from recnas.experiment.config import load_config

    return load_config(config_path(method, dataset), [
        f"seed={seed}", f"threads={threads}", f"trainer.epochs={epochs}", f"data.path={DATA / dataset}",
        f"data.cache_dir={work / 'cache'}", f"name={dataset}-{method}-{seed}", *extra])


def setting_record(methods: list[str], dataset: str) -> dict[str, Any]:
    """What the results JSON keeps of the settings: per method, the YAML's path and content."""
    return {m: {"config": str(config_path(m, dataset).relative_to(ROOT)),
                "setting": yaml.safe_load(config_path(m, dataset).read_text())} for m in methods}
