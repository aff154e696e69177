"""The benchmark settings: one YAML per method under bench/configs (`<method>.yaml`), the same for every dataset.

Each file's settings were chosen once, on the validation splits of frappe_full and ml100k together (its header says
how); nothing is chosen per dataset. The scripts add what changes per run: seed, threads, trainer.epochs, data.path,
the cache and the run's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "bench" / "configs"
DATA = ROOT.parent / "shared" / "data" / "derived"


def config_path(method: str) -> Path:
    """The YAML every cell of `method` runs."""
    return CONFIGS / f"{method}.yaml"


def bench_config(method: str, dataset: str, seed: int, threads: int, epochs: int, work: Path,
                 extra: list[str]) -> Any:
    """The cell's config: its YAML with this run's seed, threads, epochs, data and cache (then `extra`)."""
    from recnas.experiment.config import load_config

    return load_config(config_path(method), [
        f"seed={seed}", f"threads={threads}", f"trainer.epochs={epochs}", f"data.path={DATA / dataset}",
        f"data.cache_dir={work / 'cache'}", f"name={dataset}-{method}-{seed}", *extra])


def setting_record(methods: list[str]) -> dict[str, Any]:
    """What the results JSON keeps of the settings: per method, the YAML's path and content."""
    return {m: {"config": str(config_path(m).relative_to(ROOT)),
                "setting": yaml.safe_load(config_path(m).read_text())} for m in methods}
