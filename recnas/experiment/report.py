"""The search report, built from the run folder alone: `report.json` (figures) and `report.html` (the same, readable).

Data summary; the architecture found in human terms with its search trace and plots (the method says how:
`SearchMethod.architecture / curve / html / plots`); test AUC/logloss, EP and time of the searched model against
the baseline. Plots are matplotlib PNGs embedded as base64, so the HTML file stands alone.
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
from recnas.experiment.planted import planted_against_found, read_truth
from recnas.methods import SearchMethod, get_method
from recnas.methods.render import fmt, table

RESULT_KEYS = ("test_auc", "test_logloss", "valid_auc", "embedding_params", "params", "epochs", "train_seconds",
               "wall_seconds", "train_samples_per_s")


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build_report(run_dir: str | Path, method: SearchMethod | None = None) -> dict[str, Any]:
    """Every figure of the report, from the files of `run_dir`."""
    run_dir = Path(run_dir)
    arch = _load_json(run_dir / "search" / "arch.json")
    if arch is None:
        raise DataError(f"{run_dir}: no search/arch.json; the search has not finished (run `recnas search` again)")
    schema = Schema.load(run_dir)
    method = method or _method(run_dir, arch)
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
                   "arch_steps": arch.get("arch_steps"), "curve": method.curve(history)},
    }
    rep["warnings"] = method.warnings(arch)
    rep["architecture"] = method.architecture(arch, schema)
    truth = read_truth(method.cfg.data.path)
    planted = planted_against_found(method, arch, truth) if truth is not None else {}
    if planted:
        rep["planted"] = planted
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
        rep["control_arch"] = control_arch  # what the control found, for the method's own plots
        if retrain is not None:
            results["test_auc_gain_over_control"] = retrain["test_auc"] - control["test_auc"]
    if retrain is not None and baseline is not None:
        results["test_auc_gain"] = retrain["test_auc"] - baseline["test_auc"]
        # whole models: first-order weights included in both; the lift maps count as dense parameters, not EP
        results["model_ep_fraction"] = retrain["embedding_params"] / max(baseline["embedding_params"], 1)
        search_s = float(arch.get("search_seconds") or 0.0)
        results["search_plus_retrain_seconds"] = search_s + retrain["wall_seconds"]
        results["time_vs_baseline"] = results["search_plus_retrain_seconds"] / max(baseline["wall_seconds"], 1e-9)
    rep["results"] = results
    return rep


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _method(run_dir: Path, arch: dict[str, Any]) -> SearchMethod:
    """The method that wrote the run, on the run folder's config."""
    from recnas.experiment.run import load_config_file

    cfg = load_config_file(run_dir / "config.yaml")
    if cfg.search is None or cfg.search.method != arch["method"]:
        raise DataError(f"{run_dir}: config.yaml and search/arch.json name different methods; search again")
    return get_method(arch["method"])(cfg)


def planted_html(view: dict[str, Any]) -> list[str]:
    """The planted-against-found section (synthetic data with a truth.json): what was planted, what was found."""
    out = []
    if "memory" in view:
        m = view["memory"]
        verdict = ("the planted pair's fields store more per id than every noise field" if m["holds"] else
                   "the planted pair's fields do NOT store more per id than every noise field")
        pair = html.escape(" x ".join(m["pair"]))
        out += [f"<h2>Planted against found: memory</h2><p>strongest planted pair {pair}; {verdict}</p>",
                table([[f, v["role"], v["floats_per_id"]] for f, v in m["per_field"].items()],
                      ["field", "planted role", "floats stored per id"])]
    if "pairs" in view:
        p = view["pairs"]
        kept = {frozenset(x) for x in p["recovered"]}
        rows = [[" x ".join(x), "kept" if frozenset(x) in kept else "missed"] for x in p["planted"]]
        rows += [[" x ".join(x), "kept (noise field)"] for x in p["with_noise_field"]]
        out += [f"<h2>Planted against found: interactions</h2><p>{len(p['recovered'])} of {len(p['planted'])} "
                f"planted pairs kept, {p['kept']} kept in all</p>", table(rows, ["pair", "found"])]
    return out


def render_html(rep: dict[str, Any], arch: dict[str, Any], method: SearchMethod) -> str:
    """The report as one self-contained HTML page."""
    parts = [f"<h1>recnas search report: {html.escape(rep['method'])} on {html.escape(rep['model'])}</h1>",
             f"<p>run folder <code>{html.escape(rep['run'])}</code>; space fingerprint "
             f"<code>{rep['space_fingerprint']}</code></p>"]
    parts += [f"<p class='warning'><b>warning:</b> {html.escape(w)}</p>" for w in rep.get("warnings", [])]
    res = rep["results"]
    if res:
        rows = [[name] + [res[name].get(k) for k in RESULT_KEYS] for name in ("searched", "control", "baseline")
                if name in res]
        parts += ["<h2>Searched model against the baseline (test split)</h2>", table(rows, ["model", *RESULT_KEYS])]
        if "test_auc_gain" in res:
            parts.append(f"<p>test AUC gain {res['test_auc_gain']:+.4f}; embedding parameters (first-order "
                         f"weights included) {res['model_ep_fraction']:.1%} of the baseline's; search + retrain "
                         f"{res['search_plus_retrain_seconds']:.1f} s = {res['time_vs_baseline']:.2f}x one baseline "
                         "training</p>")
    parts += planted_html(rep.get("planted") or {})
    parts += method.html(rep, arch)
    for caption, fig in method.plots(rep, arch):
        parts.append(f"<h3>{html.escape(caption)}</h3><img src='data:image/png;base64,{_png(fig)}'/>")
    curve = rep["search"]["curve"]
    if curve and "epoch" in curve[0]:
        parts += ["<h2>Search trace</h2>",
                  table([[c["epoch"], c["train_loss"], c["valid_auc"], c["valid_logloss"], c.get("nonzero_gates", "")]
                         for c in curve], ["epoch", "train loss", "valid AUC", "valid logloss", "non-zero gates"])]
    parts += ["<h2>Data</h2>", f"<p>{html.escape(str(rep['data']['dataset']))}: "
              f"{fmt(rep['data']['train_rows'])} train rows</p>",
              table([[f["name"], f["type"], f["cardinality"]] for f in rep["data"]["fields"]],
                    ["field", "type", "cardinality"])]
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse;"
             "margin:.5em 0}.warning{background:#fff3cd;border:1px solid #e0b000;padding:4px 8px}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}")
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>" \
           + "\n".join(parts) + "</body></html>"


def write_report(run_dir: str | Path) -> Path:
    """Write report.json and report.html into `run_dir`; returns the HTML path."""
    run_dir = Path(run_dir)
    arch = json.loads((run_dir / "search" / "arch.json").read_text())
    method = _method(run_dir, arch)
    rep = build_report(run_dir, method)
    (run_dir / "report.json").write_text(json.dumps(rep, indent=2))
    path = run_dir / "report.html"
    path.write_text(render_html(rep, arch, method))
    return path
