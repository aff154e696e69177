"""The search report, built from the run folder alone: `report.json` (figures) and `report.html` (the same, readable).

Data summary; the architecture found in human terms (AutoDim: dimension per field with its cardinality and
the EP against full dimension; AutoFIS: the kept interactions and a heat map of |gate| over field pairs;
NIS / ESAPN: width per frequency bucket of every field, the EP per field, and EP against AUC with the
random control when it was run);
the search curves; test AUC/logloss, EP and time of the searched model against the baseline. Plots are
matplotlib PNGs embedded as base64, so the HTML file stands alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from recnas.data.schema import Schema
from recnas.errors import DataError

RESULT_KEYS = ("test_auc", "test_logloss", "valid_auc", "embedding_params", "params", "epochs", "train_seconds",
               "wall_seconds", "train_samples_per_s")


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _curve(method: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The search trace: per epoch (one-shot methods), per controller step (NIS) or per decision round (ESAPN)."""
    if method == "nis":
        return [{"step": h["step"], "reward": h.get("reward"), "valid_logloss": h.get("valid_logloss"),
                 "decision_cost": h.get("decision_cost"), "train_loss": h.get("train_loss")} for h in history]
    if method == "esapn":
        return [{"round": h["round"], "ep_fraction": h["ep_fraction"], "enlarged": h["enlarged"],
                 "mean_value": h["mean_value"], "train_loss": h.get("train_loss")} for h in history]
    return [{"epoch": h["epoch"], "valid_auc": h["metrics"].get("valid_auc"),
             "valid_logloss": h["metrics"].get("valid_logloss"), "train_loss": h["metrics"].get("train_loss"),
             **({"nonzero_gates": h["nonzero_gates"]} if "nonzero_gates" in h else {}),
             **({"dims": h["dims"]} if "dims" in h else {})} for h in history]


def _embedding_layout(arch: dict[str, Any], card: dict[str, int]) -> dict[str, Any]:
    """NIS / ESAPN: width per frequency bucket of every field, with the EP it stores against full width."""
    fields = [{"field": f, "cardinality": card.get(f), "bucket_rows": arch["bucket_rows"][f],
               "bucket_widths": w, "ep": arch["field_ep"][f], "full_ep": arch["full_field_ep"][f],
               "ep_fraction": arch["field_ep"][f] / max(arch["full_field_ep"][f], 1),
               **({"blocks": arch["blocks"][f]} if "blocks" in arch else {}),
               **({"sizes": arch["sizes"][f]} if "sizes" in arch else {})}
              for f, w in arch["bucket_widths"].items()]
    return {"fields": fields, "common_dim": arch["common_dim"], "ep": arch["ep"], "full_ep": arch["full_ep"],
            "ep_fraction": arch["ep_fraction"]}


def build_report(run_dir: str | Path) -> dict[str, Any]:
    """Every figure of the report, from the files of `run_dir`."""
    run_dir = Path(run_dir)
    arch = _load_json(run_dir / "search" / "arch.json")
    if arch is None:
        raise DataError(f"{run_dir}: no search/arch.json; the search has not finished (run `recnas search` again)")
    schema = Schema.load(run_dir)
    retrain = _load_json(run_dir / "retrain" / "metrics.json")
    baseline = _load_json(run_dir / "baseline" / "metrics.json")
    history = _history(run_dir / "search" / "history.jsonl")
    rep: dict[str, Any] = {
        "run": str(run_dir), "method": arch["method"], "model": arch["model"],
        "space_fingerprint": arch["space_fingerprint"],
        "data": {"dataset": (retrain or {}).get("dataset"), "train_rows": (retrain or {}).get("train_rows"),
                 "fields": [{"name": f.name, "type": f.type.value, "cardinality": f.cardinality}
                            for f in schema.fields]},
        "search": {"epochs": arch.get("search_epochs"), "seconds": arch.get("search_seconds"),
                   "arch_steps": arch.get("arch_steps"), "curve": _curve(arch["method"], history)},
    }
    card = {f.name: f.cardinality for f in schema.fields}
    if arch["method"] == "autodim":
        rep["architecture"] = {
            "dims": [{"field": f, "cardinality": card.get(f), "rows": arch["field_rows"][f], "dim": d,
                      "probs": arch["probs"].get(f"dim/{f}")} for f, d in arch["dims"].items()],
            "candidates": arch["candidates"], "common_dim": arch["common_dim"],
            # the searched tables against the same tables with every field at the largest candidate
            "ep": arch["ep"], "full_ep": arch["full_ep"], "ep_fraction": arch["ep"] / max(arch["full_ep"], 1)}
    elif arch["method"] in ("nis", "esapn"):
        rep["architecture"] = _embedding_layout(arch, card)
    else:
        rep["architecture"] = {"interactions": arch["interactions"], "kept": len(arch["interactions"]),
                               "total_pairs": arch["num_pairs"],
                               "kept_fraction": len(arch["interactions"]) / max(arch["num_pairs"], 1),
                               "gates": arch["gates"]}
    results: dict[str, Any] = {}
    if retrain is not None:
        results["searched"] = {k: retrain.get(k) for k in RESULT_KEYS}
    if baseline is not None:
        results["baseline"] = {k: baseline.get(k) for k in RESULT_KEYS}
    control = _load_json(run_dir / "control" / "metrics.json")
    if control is not None:
        results["control"] = {k: control.get(k) for k in RESULT_KEYS}
        control_arch = _load_json(run_dir / "control" / "arch.json") or {}
        results["control"]["searched_ep"] = control_arch.get("ep")
        results["control"]["what"] = control_arch.get("control")
        if retrain is not None:
            results["test_auc_gain_over_control"] = retrain["test_auc"] - control["test_auc"]
    if retrain is not None and baseline is not None:
        results["test_auc_gain"] = retrain["test_auc"] - baseline["test_auc"]
        # whole models: first-order weights included in both; the lift maps count as dense parameters, not EP
        results["ep_fraction"] = retrain["embedding_params"] / max(baseline["embedding_params"], 1)
        search_s = float(arch.get("search_seconds") or 0.0)
        results["search_plus_retrain_seconds"] = search_s + retrain["wall_seconds"]
        results["time_vs_baseline"] = results["search_plus_retrain_seconds"] / max(baseline["wall_seconds"], 1e-9)
    rep["results"] = results
    return rep


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(rep: dict[str, Any], arch: dict[str, Any]) -> list[tuple[str, str]]:
    """(caption, base64 PNG) for each plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = []
    curve = rep["search"]["curve"]
    if rep["method"] in ("nis", "esapn"):
        return _layout_plots(rep, plt, np)
    if curve:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        epochs = [c["epoch"] for c in curve]
        ax.plot(epochs, [c["valid_auc"] for c in curve], marker="o", color="tab:blue")
        ax.set_xlabel("search epoch")
        ax.set_ylabel("valid AUC (supernet)", color="tab:blue")
        if rep["method"] == "autofis":
            ax2 = ax.twinx()
            ax2.plot(epochs, [c.get("nonzero_gates") for c in curve], marker="s", color="tab:red")
            ax2.set_ylabel("non-zero gates", color="tab:red")
        else:
            ax2 = ax.twinx()
            ax2.plot(epochs, [float(np.mean(list(c["dims"].values()))) for c in curve], marker="s", color="tab:red")
            ax2.set_ylabel("mean chosen dimension", color="tab:red")
        out.append(("Search curve", _png(fig)))
    if rep["method"] == "autofis":
        names = [f["name"] for f in rep["data"]["fields"]]
        names = [n for n in names if any(n in k.removeprefix("interaction/").split("*") for k in arch["gates"])]
        index = {n: i for i, n in enumerate(names)}
        grid = np.full((len(names), len(names)), np.nan)
        for label, g in arch["gates"].items():
            a, b = label.removeprefix("interaction/").split("*")
            grid[index[a], index[b]] = grid[index[b], index[a]] = abs(g)
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        im = ax.imshow(grid, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_yticks(range(len(names)), names)
        fig.colorbar(im, ax=ax, label="|gate| (0 = removed)")
        out.append(("|gate| per field pair after the search", _png(fig)))
    else:
        dims = rep["architecture"]["dims"]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.bar([d["field"] for d in dims], [d["dim"] for d in dims], color="tab:green")
        ax.set_ylabel("chosen dimension")
        ax.set_yscale("log", base=2)
        ax.tick_params(axis="x", rotation=90)
        out.append(("Embedding dimension per field", _png(fig)))
    return out


def _layout_plots(rep: dict[str, Any], plt: Any, np: Any) -> list[tuple[str, str]]:
    """NIS / ESAPN: the search trace, width per frequency bucket, and EP against test AUC."""
    out = []
    curve = rep["search"]["curve"]
    if curve:
        x_key, y_key, y2_key = (("step", "reward", "decision_cost") if rep["method"] == "nis"
                                else ("round", "mean_value", "ep_fraction"))
        fig, ax = plt.subplots(figsize=(6, 3.2))
        xs = [c[x_key] for c in curve]
        ax.plot(xs, [c[y_key] for c in curve], color="tab:blue")
        ax.set_xlabel("controller step" if rep["method"] == "nis" else "decision round")
        ax.set_ylabel("mean reward" if rep["method"] == "nis" else "mean value of growing", color="tab:blue")
        ax2 = ax.twinx()
        ax2.plot(xs, [c[y2_key] for c in curve], color="tab:red")
        ax2.set_ylabel("C_M of the decision" if rep["method"] == "nis" else "EP share", color="tab:red")
        out.append(("Search curve", _png(fig)))
    fields = rep["architecture"]["fields"]
    if fields:
        grid = np.array([f["bucket_widths"] for f in fields], dtype=float)
        fig, ax = plt.subplots(figsize=(6, 0.45 * len(fields) + 1.5))
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        ax.set_yticks(range(len(fields)), [f["field"] for f in fields])
        ax.set_xlabel("frequency bucket (0 = most frequent ids)")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{int(grid[i, j])}", ha="center", va="center", color="w", fontsize=7)
        fig.colorbar(im, ax=ax, label="embedding width")
        out.append(("Embedding width per frequency bucket", _png(fig)))
    res = rep["results"]
    points = [(name, res[name]) for name in ("searched", "control", "baseline") if name in res]
    if points:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for name, r in points:
            ax.scatter(r["embedding_params"], r["test_auc"], label=name, s=40)
        ax.set_xscale("log")
        ax.set_xlabel("embedding parameters (whole model)")
        ax.set_ylabel("test AUC")
        ax.legend()
        out.append(("EP against test AUC", _png(fig)))
    return out


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def render_html(rep: dict[str, Any], arch: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    parts = [f"<h1>recnas search report: {html.escape(rep['method'])} on {html.escape(rep['model'])}</h1>",
             f"<p>run folder <code>{html.escape(rep['run'])}</code>; space fingerprint "
             f"<code>{rep['space_fingerprint']}</code></p>"]
    res = rep["results"]
    if res:
        rows = [[name] + [res[name].get(k) for k in RESULT_KEYS] for name in ("searched", "control", "baseline")
                if name in res]
        parts += ["<h2>Searched model against the baseline (test split)</h2>", _table(rows, ["model", *RESULT_KEYS])]
        if "test_auc_gain" in res:
            parts.append(f"<p>test AUC gain {res['test_auc_gain']:+.4f}; embedding parameters (first-order "
                         f"weights included) {res['ep_fraction']:.1%} of the baseline's; search + retrain "
                         f"{res['search_plus_retrain_seconds']:.1f} s = {res['time_vs_baseline']:.2f}x one baseline "
                         "training</p>")
    a = rep["architecture"]
    if rep["method"] == "autodim":
        parts += [f"<h2>Dimension per field</h2><p>candidates {a['candidates']}, common dimension "
                  f"{a['common_dim']}; searched embedding parameters {a['ep']:,} of {a['full_ep']:,} at full "
                  f"dimension ({a['ep_fraction']:.1%})</p>",
                  _table([[d["field"], d["cardinality"], d["dim"],
                           " ".join(f"{p:.2f}" for p in d["probs"] or [])] for d in a["dims"]],
                         ["field", "cardinality", "dimension", "probabilities over candidates"])]
    elif rep["method"] in ("nis", "esapn"):
        if "control" in res:
            parts.append(f"<p>control: {html.escape(str(res['control'].get('what')))}; test AUC of the searched "
                         f"model minus the control's: {res.get('test_auc_gain_over_control', float('nan')):+.4f}</p>")
        parts += [f"<h2>Embedding layout per field</h2><p>full width {a['common_dim']}; searched fields store "
                  f"{a['ep']:,} of {a['full_ep']:,} floats at full width ({a['ep_fraction']:.1%})</p>",
                  _table([[f["field"], f["cardinality"], f["ep"], f["ep_fraction"],
                           " ".join(f"{r}x{w}" for r, w in zip(f["bucket_rows"], f["bucket_widths"], strict=True))]
                          for f in a["fields"]],
                         ["field", "cardinality", "floats stored", "of full", "rows x width per bucket, head first"])]
    else:
        parts += [f"<h2>Interactions kept: {a['kept']} of {a['total_pairs']} ({a['kept_fraction']:.0%})</h2>",
                  _table([[x, y, arch["gates"][f"interaction/{x}*{y}"]] for x, y in a["interactions"]],
                         ["field", "field", "gate"])]
    for caption, png in _plots(rep, arch):
        parts.append(f"<h3>{html.escape(caption)}</h3><img src='data:image/png;base64,{png}'/>")
    curve = rep["search"]["curve"]
    if curve and rep["method"] in ("nis", "esapn"):
        keys = list(curve[0])
        step = max(len(curve) // 20, 1)
        parts += ["<h2>Search trace</h2>", _table([[c.get(k) for k in keys] for c in curve[::step]], keys)]
    elif curve:
        parts += ["<h2>Search trace</h2>",
                  _table([[c["epoch"], c["train_loss"], c["valid_auc"], c["valid_logloss"],
                           c.get("nonzero_gates", "")] for c in curve],
                         ["epoch", "train loss", "valid AUC", "valid logloss", "non-zero gates"])]
    parts += ["<h2>Data</h2>", f"<p>{html.escape(str(rep['data']['dataset']))}: "
              f"{_fmt(rep['data']['train_rows'])} train rows</p>",
              _table([[f["name"], f["type"], f["cardinality"]] for f in rep["data"]["fields"]],
                     ["field", "type", "cardinality"])]
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse;"
             "margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}")
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>" \
           + "\n".join(parts) + "</body></html>"


def write_report(run_dir: str | Path) -> Path:
    """Write report.json and report.html into `run_dir`; returns the HTML path."""
    run_dir = Path(run_dir)
    rep = build_report(run_dir)
    arch = json.loads((run_dir / "search" / "arch.json").read_text())
    (run_dir / "report.json").write_text(json.dumps(rep, indent=2))
    path = run_dir / "report.html"
    path.write_text(render_html(rep, arch))
    return path
