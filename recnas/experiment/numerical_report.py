"""What AutoDis learned, written next to a run: p(h|x) per numerical field as JSON and as one plot.

A user reads from it which value ranges share a meta-embedding (the learned soft buckets) and where
the hard discretisation (`export()`) puts its edges.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from torch import nn

from recnas.fileio import write_text_atomic


def autodis_blocks(model: nn.Module) -> dict[str, Any]:
    """Every AutoDis encoder inside `model`, by module path (the embedding's, the first-order part's)."""
    if "recnas.space.autodis" not in sys.modules:  # never loaded: no model holds one (nn loads it on first use)
        return {}
    from recnas.space.autodis import AutoDisEncoder

    return {name: m for name, m in model.named_modules() if isinstance(m, AutoDisEncoder)}


def autodis_export(model: nn.Module, points: int = 200) -> dict[str, Any]:
    """Per AutoDis block: its options, and per field p(h|x) on a grid over the train range and the hard edges."""
    out: dict[str, Any] = {}
    for name, block in autodis_blocks(model).items():
        edges = block.export()
        fields = block.assignment(points)
        for f, a in fields.items():
            a["edges"] = edges[block.label(f)]
        out[name] = {"options": block.options, "fields": fields}
    return out


def plot_autodis(export: dict[str, Any], path: Path) -> None:
    """One panel per field of the main embedding's AutoDis block: p(h|x) stacked over the value range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    name = next((k for k in export if "first_order" not in k), next(iter(export)))
    fields = export[name]["fields"]
    n = len(fields)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (f, a) in zip(axes.flat, fields.items(), strict=False):
        x, p = np.asarray(a["x"]), np.asarray(a["p"])
        ax.stackplot(x, p.T, linewidth=0)
        for e in a["edges"]:
            ax.axvline(e, color="k", linewidth=0.5, alpha=0.5)
        if a["transform"] == "log1p" and x.min() >= 0:
            ax.set_xscale("symlog", linthresh=1.0)
        ax.set_title(f"{f}: p(h|x), {p.shape[1]} meta-embeddings", fontsize=9)
        ax.set_xlim(x.min(), x.max())
        ax.set_ylim(0, 1)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"AutoDis soft discretisation ({name}); lines: hard edges", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_autodis_report(model: nn.Module, run_dir: Path) -> dict[str, str] | None:
    """Write `autodis.json` and `autodis.png` into `run_dir` when `model` uses AutoDis; returns their paths."""
    export = autodis_export(model)
    if not export:
        return None
    js, png = run_dir / "autodis.json", run_dir / "autodis.png"
    write_text_atomic(js, json.dumps(export))
    plot_autodis(export, png)
    return {"json": str(js), "plot": str(png)}
