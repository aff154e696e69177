"""Report pieces the methods draw with: an HTML table, the search curve, a pair heat map, layout plots.

Plots are matplotlib figures (Agg backend); the report embeds them as PNG.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any


def fmt(v: Any) -> str:
    """A table cell: floats to 4 decimals (1 above 10), ints with separators."""
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def table(rows: list[list[Any]], header: list[str]) -> str:
    """An HTML table."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def search_curve(curve: list[dict[str, Any]], key: str, label: str, x_key: str = "epoch",
                 x_label: str = "search epoch", y_key: str = "valid_auc", y_label: str = "valid AUC (supernet)",
                 marker: str | None = "o") -> Any:
    """The search trace: `y_key` against `x_key`, and `key` on a second axis."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs = [c[x_key] for c in curve]
    ax.plot(xs, [c[y_key] for c in curve], marker=marker, color="tab:blue")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label, color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(xs, [c.get(key) for c in curve], marker=None if marker is None else "s", color="tab:red")
    ax2.set_ylabel(label, color="tab:red")
    return fig


def heat_map(names: Sequence[str], pairs: Sequence[Sequence[str]], values: Sequence[float], label: str) -> Any:
    """A symmetric field x field grid of `values` at `pairs` (fields in no pair are left out)."""
    import numpy as np

    plt = pyplot()
    used = {n for p in pairs for n in p}
    names = [n for n in names if n in used]
    index = {n: i for i, n in enumerate(names)}
    grid = np.full((len(names), len(names)), np.nan)
    for (a, b), v in zip(pairs, values, strict=True):
        grid[index[a], index[b]] = grid[index[b], index[a]] = v
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(grid, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    fig.colorbar(im, ax=ax, label=label)
    return fig


def set_grid(fields: Sequence[str], probs: Mapping[str, Sequence[Mapping[str, float]]]) -> Any:
    """One panel per order: a field x set grid of keep-probabilities (`probs[order][set][field]`)."""
    import numpy as np

    plt = pyplot()
    orders = list(probs)
    fig, axes = plt.subplots(1, len(orders), figsize=(3.2 * len(orders) + 1.5, 0.32 * len(fields) + 1.6),
                             squeeze=False)
    im = None
    for ax, order in zip(axes[0], orders, strict=True):
        grid = np.array([[s.get(f, np.nan) for s in probs[order]] for f in fields], dtype=float)
        grid = grid.reshape(len(fields), -1)
        im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_title(order.replace("_", " "))
        ax.set_xlabel("set")
        ax.set_yticks(range(len(fields)), fields if ax is axes[0][0] else [""] * len(fields))
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), label="p(keep)")
    return fig


def bars(labels: Sequence[str], values: Sequence[float], y_label: str, log2: bool = False) -> Any:
    """One bar per label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(list(labels), list(values), color="tab:green")
    ax.set_ylabel(y_label)
    if log2:
        ax.set_yscale("log", base=2)
    ax.tick_params(axis="x", rotation=90)
    return fig


def width_grid(fields: list[dict[str, Any]]) -> Any:
    """Width per frequency bucket of every field (rows: fields, columns: buckets, head first)."""
    import numpy as np

    plt = pyplot()
    n = max(len(f["bucket_widths"]) for f in fields)  # a field with fewer ids than buckets lists fewer
    grid = np.array([list(f["bucket_widths"]) + [np.nan] * (n - len(f["bucket_widths"])) for f in fields], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(fields) + 1.5))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(fields)), [f["field"] for f in fields])
    ax.set_xlabel("frequency bucket (0 = most frequent ids)")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{int(grid[i, j])}", ha="center", va="center", color="w", fontsize=7)
    fig.colorbar(im, ax=ax, label="embedding width")
    return fig


def ep_against_auc(results: dict[str, Any]) -> Any | None:
    """Test AUC against EP of the searched model, its control and the baseline (None when none ran)."""
    points = [(name, results[name]) for name in ("searched", "control", "baseline") if name in results]
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, r in points:
        ax.scatter(r["embedding_params"], r["test_auc"], label=name, s=40)
    ax.set_xscale("log")
    ax.set_xlabel("embedding parameters (whole model)")
    ax.set_ylabel("test AUC")
    ax.legend()
    return fig
