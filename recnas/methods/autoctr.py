"""AutoCTR: whole-architecture search over DAGs of interaction blocks by aging evolution (Song et al., KDD 2020).

The space (`recnas.space.autoctr`) is a fixed-length genotype of `blocks` blocks (mlp, cross, fm, dot, efc), each
reading the field embeddings and/or earlier blocks. The search (`recnas.search.evolution`) trains each candidate as
one low-fidelity trial: a row subsample (`trial_rows`) with every id field folded into `trial_buckets` rows (the
most frequent ids keep their own rows, the tail shares the rest by id modulo), a few epochs with early stopping on
validation logloss. Trials run as Ray tasks (`executor: ray`, a local Ray by default, or a cluster at
`ray_address`) or in this process (`executor: inline`); the evolution and its LambdaRank ranker (LightGBM) stay in
the driver. Each finished trial is appended to `search/trials.jsonl`; the search is a deterministic function of the
seed and the trial results in trial-id order, so a killed search replays the recorded trials (never re-running
them) and ends with the population of an uninterrupted one. Trials run in rounds of `parallel_trials` (the search
depends on it, not on how many workers run them). Both the evolution and the random control begin with DeepFM
drawn in the space (`zoo_start`). The export is the trial with the best validation logloss at or under `max_flops`,
retrained at full fidelity as the `autoctr` model with that DAG; the baseline is DeepFM with the same settings, and
`lab.control` retrains the best of a random search given the same trials.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator
from torch import nn

from recnas.data.schema import FieldType, Schema
from recnas.data.splits import Splits
from recnas.errors import ConfigError, DataError
from recnas.methods.base import Log, MethodConfig, SearchMethod, model_kwargs, register_method, weight_settings
from recnas.methods.render import pyplot, table
from recnas.nn.block_dag import describe_blocks
from recnas.nn.embedding import embedded_field_names
from recnas.search.evolution import AgingEvolution, LambdaRanker, RandomGenotypes, SurvivalWeights
from recnas.search.trials import InlineRunner, RayRunner, TrialStore
from recnas.space.autoctr import BlockDAGSpace
from recnas.train.hooks import Hook
from recnas.train.metrics import dense_params, non_dominated

if TYPE_CHECKING:
    from recnas.experiment.config import ExperimentConfig

MODEL = "autoctr"
BASELINE = "deepfm"
TRIALS_FILE = "trials.jsonl"


class AutoCTRConfig(MethodConfig):
    """AutoCTR: the block-DAG space, the evolution, the low-fidelity trials and where they run."""

    method: Literal["autoctr"] = Field("autoctr", description="whole-architecture search over block DAGs (AutoCTR)")
    strategy: Literal["evolution", "random"] = Field("evolution", description="aging evolution with the ranker, or "
                                                     "random search over the same space (the control)")
    trials: int = Field(100, ge=1, description="candidates trained in all (the trial budget)")
    blocks: int = Field(7, ge=1, le=16, description="blocks of every DAG")
    block_types: list[Literal["mlp", "cross", "fm", "dot", "efc"]] = Field(
        default_factory=lambda: ["mlp", "cross", "fm", "dot", "efc"], min_length=1,
        description="block types of the space")
    widths: list[int] = Field(default_factory=lambda: [32, 64, 128, 256, 512], min_length=1,
                              description="candidate units of an mlp block")
    efc_vectors: list[int] = Field(default_factory=lambda: [2, 4, 8, 16], min_length=1,
                                   description="candidate output vectors of an efc block")
    population: int = Field(20, ge=2, description="population size of the aging evolution (filled first with the zoo "
                            "start, then at random)")
    zoo_start: bool = Field(True, description="the first trial of the evolution and of the random control is DeepFM "
                            "drawn in the space (an fm block on the embeddings and an mlp chain, widest first), so the "
                            "search mutates from the zoo's baseline. On frappe_full it scored better at low fidelity "
                            "than each of 40 evolved trials, which retrained to 0.94-0.96 test AUC against its 0.979 "
                            "(bench/log/2026-12-08-issue21-first-order.md)")
    mutants: int = Field(100, ge=1, description="one-token mutants of a parent the ranker scores; only the best of "
                         "them is trained")
    ranker: bool = Field(True, description="LambdaRank (LightGBM) picks the most promising mutant; false: plain "
                         "evolution (one random mutant)")
    ranker_min_trials: int = Field(10, ge=2, description="finished trials before the ranker is first fitted")
    ranker_top_share: float = Field(0.1, gt=0, le=1, description="the child is drawn among the ranker's best-scored "
                                    "share of the mutants (1/mutants: its argmax, the paper's; the argmax of a ranker "
                                    "fitted on few trials kept proposing the parent's twins on a known-answer test)")
    survival_age: float = Field(0.3, ge=0, description="survival score weight of age (old members leave first)")
    survival_loss: float = Field(0.5, ge=0, description="survival score weight of the validation-logloss rank")
    survival_cost: float = Field(0.2, ge=0, description="survival score weight of the FLOPs rank (cheap models stay)")
    parallel_trials: int = Field(2, ge=1, description="trials proposed per round and run at once; the search's "
                                 "result depends on it, not on the number of workers")
    trial_rows: int = Field(100_000, ge=100, description="train rows of a low-fidelity trial (a seeded subsample)")
    trial_valid_rows: int = Field(50_000, ge=100, description="validation rows a trial stops early and is scored on")
    trial_buckets: int = Field(10_000, ge=3, description="rows per id table in a trial: the most frequent ids keep "
                               "their own rows, the rest share by id modulo")
    trial_epochs: int = Field(5, ge=1, description="maximum epochs of a trial")
    trial_patience: int = Field(1, ge=1, description="a trial stops after this many epochs without a better "
                                "validation logloss")
    max_flops: float | None = Field(None, gt=0, description="export the best trial at or under this many FLOPs per "
                                    "row (None: the best trial)")
    executor: Literal["ray", "inline"] = Field("ray", description="run trials as Ray tasks, or one by one in this "
                                               "process")
    ray_address: str | None = Field(None, description="local (start Ray here), auto (a running cluster), or "
                                    "host:port; None: $RAY_ADDRESS, else local")
    cpus_per_trial: int = Field(1, ge=1, description="CPUs (and torch threads) of one trial")
    local_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (default: the machine's cores)")

    @model_validator(mode="after")
    def _sizes(self) -> AutoCTRConfig:
        for key in ("widths", "efc_vectors"):
            values = getattr(self, key)
            if min(values) < 1 or len(set(values)) != len(values):
                raise ValueError(f"{key} must list distinct positive integers, got {values}")
        return self


def fold_ids(ids: np.ndarray, rows: int) -> np.ndarray:
    """Ids below `rows` keep their row; the others share rows 2..rows-1 by id modulo (0 and 1 stay reserved)."""
    from recnas.data.vocab import N_RESERVED

    return np.where(ids < rows, ids, N_RESERVED + (ids - N_RESERVED) % (rows - N_RESERVED))


def folded_schema(schema: Schema, rows: int) -> Schema:
    """The schema with every categorical and multi-valued field of more than `rows` ids cut to `rows` rows."""
    from recnas.data.hashing import HashedVocabulary
    from recnas.data.vocab import N_RESERVED

    fields = []
    for f in schema.fields:
        if f.type in (FieldType.CATEGORICAL, FieldType.MULTI_CATEGORICAL) and f.cardinality > rows:
            counts = np.zeros(rows - N_RESERVED, dtype=np.int64)
            ids = np.arange(N_RESERVED, f.cardinality)
            np.add.at(counts, fold_ids(ids, rows) - N_RESERVED, np.asarray(f.vocab.counts)[N_RESERVED:])
            f = dataclasses.replace(f, hash_buckets=rows - N_RESERVED,
                                    vocab=HashedVocabulary(rows - N_RESERVED, counts))
        fields.append(f)
    return schema.replace_fields(fields)


def trial_arrays(arrays: Mapping[str, np.ndarray], n: int, rows: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded subsample of `n` rows with the id columns folded to `rows` rows."""
    total = len(arrays["y"])
    idx = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    out = {k: np.asarray(v[idx]) for k, v in arrays.items()}
    for key in ("cat", "mv"):
        if key in out and out[key].size:
            out[key] = fold_ids(out[key], rows)
    return out


def train_trial(shared: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """One low-fidelity trial (runs on a worker): build the DAG, train with early stopping, score, count its cost."""
    from recnas.data.batches import BatchIterator, FieldBatch
    from recnas.nn.block_dag import BlockDAG
    from recnas.nn.models import build_model
    from recnas.train.config import TrainerConfig
    from recnas.train.cost import flops_per_sample
    from recnas.train.seed import set_seed
    from recnas.train.trainer import Trainer, evaluate

    set_seed(int(job["seed"]), int(shared["threads"]))
    dag = BlockDAG(job["blocks"], shared["num_fields"], shared["dim"])
    model = build_model(MODEL, shared["schema"], dag=dag, **shared["model_kwargs"])
    trainer_cfg = TrainerConfig(**shared["trainer"])
    train = BatchIterator(shared["train"], trainer_cfg.batch_size, shuffle=True, seed=int(job["seed"]),
                          drop_last=len(shared["train"]["y"]) > trainer_cfg.batch_size)
    valid = BatchIterator(shared["valid"], trainer_cfg.eval_batch_size, shuffle=False)
    fit = Trainer(trainer_cfg).fit(model, train, valid)
    scores = evaluate(model, valid)
    if not np.isfinite(scores["logloss"]):
        raise FloatingPointError(f"the trial diverged (validation logloss {scores['logloss']})")
    probe = FieldBatch.from_arrays({k: v[:256] for k, v in shared["valid"].items()})
    return {"valid_logloss": float(scores["logloss"]), "valid_auc": float(scores["auc"]),
            "flops": float(flops_per_sample(model, probe)), "params": dense_params(model), "epochs": int(fit.epochs)}


def best_so_far(records: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """The best validation logloss after each trial (None until one succeeds)."""
    out: list[float | None] = []
    best: float | None = None
    for r in records:
        if r.get("status") == "ok" and (best is None or r["valid_logloss"] < best):
            best = float(r["valid_logloss"])
        out.append(best)
    return out


@register_method("autoctr")
class AutoCTR(SearchMethod):
    """The method of the module docstring."""

    paper = ("Song et al., Towards Automated Neural Interaction Discovery for Click-Through Rate Prediction, "
             "KDD 2020")
    decides = "the whole interaction architecture: a DAG of mlp, cross, fm, dot and efc blocks"
    config = AutoCTRConfig
    smoke = ("model.name=autoctr", "search.executor=inline", "search.trials=6", "search.population=3",
             "search.mutants=6", "search.ranker_min_trials=3", "search.blocks=3", "search.trial_epochs=1",
             "search.trial_rows=2000", "search.trial_valid_rows=1000", "search.widths=[16,32]")

    def check(self) -> None:
        """The autoctr model; survival weights that score something."""
        super().check()
        if self.cfg.model.name.lower() != MODEL:
            raise ConfigError(f"AutoCTR searches the DAG of the {MODEL!r} model; set model.name={MODEL} (got "
                              f"{self.cfg.model.name!r})")
        s = self.s
        if s.survival_age + s.survival_loss + s.survival_cost <= 0:
            raise ConfigError("search.survival_age, survival_loss and survival_cost are all 0; give one a weight")
        if s.strategy == "evolution" and s.trials <= s.population:
            raise ConfigError(f"search.trials={s.trials} only fills the population (search.population={s.population})"
                              "; evolution needs more trials than that, or set search.strategy=random")

    def space(self, schema: Schema) -> BlockDAGSpace:
        """The genotypes over the data's embedded fields."""
        names = embedded_field_names(schema, self.cfg.model.numerical_encoder)
        if not names:
            raise ConfigError("AutoCTR's blocks read field embeddings, and this data embeds none")
        s = self.s
        return BlockDAGSpace(len(names), self.cfg.model.embedding_dim, s.blocks, s.block_types, s.widths,
                             s.efc_vectors)

    def baseline_config(self) -> ExperimentConfig:
        """DeepFM with the same settings."""
        out = self.cfg.model_copy(deep=True)
        out.model.name = BASELINE
        return out

    # ---- the search --------------------------------------------------------------------------
    def shared_data(self, splits: Splits, space: BlockDAGSpace) -> dict[str, Any]:
        """What every trial reads: folded subsamples, the folded schema, the DAG's shape, model and trainer settings."""
        cfg, s = self.cfg, self.s
        schema = folded_schema(splits.ds.schema, s.trial_buckets)
        lr, l2 = weight_settings(cfg)
        trainer = {**cfg.trainer.model_dump(), "lr": lr, "embedding_l2": l2, "epochs": s.trial_epochs,
                   "patience": s.trial_patience, "monitor": "logloss", "min_epochs": 0, "progress": False,
                   "restore_best": True, "checkpoint_every": None,
                   "batch_size": s.batch_size or cfg.trainer.batch_size}
        threads = s.cpus_per_trial if s.executor == "ray" else cfg.threads
        return {"schema": schema, "num_fields": space.num_fields, "dim": space.dim,
                "model_kwargs": {**model_kwargs(cfg), "sparse": False},
                "trainer": trainer, "threads": threads,
                "train": trial_arrays(splits.ds.splits["train"], s.trial_rows, s.trial_buckets, cfg.seed),
                "valid": trial_arrays(splits.ds.splits["valid"], s.trial_valid_rows, s.trial_buckets, cfg.seed + 1)}

    def runner(self) -> InlineRunner | RayRunner:
        """Where trials run."""
        s = self.s
        if s.executor == "inline":
            return InlineRunner()
        return RayRunner(s.ray_address, s.cpus_per_trial, s.local_cpus)

    def strategy(self, space: BlockDAGSpace, kind: str) -> RandomGenotypes:
        """The evolution (with its ranker) or random search, seeded by the config's seed."""
        s, seed = self.s, self.cfg.seed
        zoo = space.zoo_start() if s.zoo_start else None
        start = [zoo] if zoo is not None else []
        if kind == "random":
            return RandomGenotypes(space, seed, start)
        ranker = LambdaRanker(seed, min_trials=s.ranker_min_trials) if s.ranker else None
        return AgingEvolution(space, seed, s.population, s.mutants, ranker,
                              weights=SurvivalWeights(s.survival_age, s.survival_loss, s.survival_cost),
                              top_share=s.ranker_top_share, start=start)

    def run_trials(self, splits: Splits, folder: Path, kind: str, log: Log) -> tuple[list[dict[str, Any]], Any]:
        """Every trial of a `kind` search, replaying those recorded in `folder/trials.jsonl` (see the docstring)."""
        s = self.s
        space = self.space(splits.ds.schema)
        strategy = self.strategy(space, kind)
        store = TrialStore(folder / TRIALS_FILE)
        recorded = store.read()
        if recorded:
            log(f"resuming: {len(recorded)} trials of {s.trials} recorded in {store.path}")
        runner = self.runner()
        try:
            shared = runner.share(self.shared_data(splits, space))
            log(f"{kind} search over {s.blocks}-block DAGs: {s.trials} trials, {s.parallel_trials} per round, on "
                f"{runner.workers} worker(s)")
            records: list[dict[str, Any]] = []
            while len(records) < s.trials:
                first = len(records)
                proposals = strategy.propose(min(s.parallel_trials, s.trials - first))
                jobs, results = [], {}
                for tid, p in enumerate(proposals, first):
                    job = {"id": tid, "strategy": kind, "origin": p.origin, "parent": p.parent,
                           "genotype": p.genotype, "key": space.key(p.genotype),
                           "blocks": [b.to_dict() for b in space.blocks(p.genotype)],
                           "seed": int(np.random.SeedSequence([self.cfg.seed, tid]).generate_state(1)[0] >> 1)}
                    old = recorded.get(tid)
                    if old is None:
                        jobs.append(job)
                    elif old.get("key") != job["key"]:
                        raise DataError(f"{store.path}: trial {tid} was another architecture; this file was written "
                                        "by another search (seed or space changed): delete it to search again")
                    else:
                        results[tid] = old
                for rec in runner.run(train_trial, shared, jobs):
                    store.append(rec)
                    results[rec["id"]] = rec
                    if rec["status"] == "ok":
                        log(f"trial {rec['id']}: valid logloss {rec['valid_logloss']:.4f}, AUC {rec['valid_auc']:.4f}, "
                            f"{rec['flops']:,.0f} FLOPs/row ({rec['origin']}, {rec['seconds']:.1f} s)")
                    else:
                        log(f"trial {rec['id']} failed: {rec['error']}")
                round_records = [results[t] for t in range(first, first + len(proposals))]
                strategy.observe(round_records)
                records += round_records
        finally:
            runner.close()
        return records, strategy

    def export(self, records: list[dict[str, Any]], where: str) -> dict[str, Any]:
        """The best successful trial at or under `max_flops`; clear errors when there is none."""
        ok = [r for r in records if r.get("status") == "ok"]
        if not ok:
            raise DataError(f"{where}: every one of the {len(records)} trials failed; the first: "
                            f"{records[0].get('error')}")
        fits = [r for r in ok if self.s.max_flops is None or r["flops"] <= self.s.max_flops]
        if not fits:
            cheapest = min(r["flops"] for r in ok)
            raise ConfigError(f"search.max_flops={self.s.max_flops:,.0f} is below every trained candidate (the "
                              f"cheapest: {cheapest:,.0f} FLOPs per row); raise it, or lower search.widths / "
                              f"search.blocks. The {len(records)} trials stay in {where}")
        return min(fits, key=lambda r: (r["valid_logloss"], r["id"]))

    def arch(self, splits: Splits, records: list[dict[str, Any]], strategy: Any, where: str,
             seconds: float) -> dict[str, Any]:
        """arch.json: the exported genotype and blocks, the population, and a compact trace of every trial."""
        space = self.space(splits.ds.schema)
        best = self.export(records, where)
        keys = ("id", "status", "origin", "valid_logloss", "valid_auc", "flops", "params", "seconds", "node")
        nodes = Counter(r["node"] for r in records if r.get("node"))
        return {"sample": best["genotype"], "space_fingerprint": space.fingerprint(), "blocks": best["blocks"],
                "dag": describe_blocks(space.blocks(best["genotype"])), "strategy": strategy.name,
                "exported_trial": best["id"], "valid_logloss": best["valid_logloss"],
                "valid_auc": best["valid_auc"], "flops": best["flops"], "params": best["params"],
                "max_flops": self.s.max_flops, "trials": len(records),
                "failed": sum(r.get("status") != "ok" for r in records),
                "population": sorted(m.trial for m in getattr(strategy, "population", [])),
                "best_so_far": best_so_far(records), "nodes": dict(nodes),
                "trace": [{k: r.get(k) for k in keys} for r in records], "search_seconds": round(seconds, 2)}

    def search(self, splits: Splits, search_dir: Path, log: Log, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
        """Trials until the budget, then the export (see the module docstring)."""
        start = time.perf_counter()
        records, strategy = self.run_trials(splits, search_dir, self.s.strategy, log)
        return self.arch(splits, records, strategy, str(search_dir / TRIALS_FILE), time.perf_counter() - start)

    def control_arch(self, splits: Splits, arch: dict[str, Any], control_dir: Path, log: Log) -> dict[str, Any]:
        """The best of a random search with the same trial budget (its trials in control/trials.jsonl)."""
        start = time.perf_counter()
        records, strategy = self.run_trials(splits, control_dir, "random", log)
        found = self.arch(splits, records, strategy, str(control_dir / TRIALS_FILE), time.perf_counter() - start)
        return {**found, "control": f"the best of a random search over the same space, {len(records)} trials"}

    def frozen_parts(self, schema: Schema, arch: dict[str, Any]) -> dict[str, nn.Module]:
        """The DAG of arch.json's `blocks` (what a person reads and may edit), with fresh weights."""
        space = self.space(schema)
        blocks = arch.get("blocks")
        genotype = (space.from_blocks(blocks, "arch.json") if isinstance(blocks, list) else dict(arch["sample"]))
        try:
            return {"dag": space.freeze(genotype)}
        except ConfigError as e:
            raise ConfigError(f"arch.json: {e}") from None

    # ---- how the result reads ----------------------------------------------------------------
    def summary(self, arch: dict[str, Any]) -> list[str]:
        """The exported DAG, one block per line, and what the search tried."""
        head = (f"{arch['strategy']}: {arch['trials']} trials ({arch['failed']} failed); exported trial "
                f"{arch['exported_trial']}: valid logloss {arch['valid_logloss']:.4f}, AUC {arch['valid_auc']:.4f}, "
                f"{arch['flops']:,.0f} FLOPs/row, {arch['params']:,} dense parameters")
        return [head, *arch["dag"]]

    def warnings(self, arch: dict[str, Any]) -> list[str]:
        """Many failed trials."""
        if arch["failed"] > 0.2 * arch["trials"]:
            return [f"{arch['failed']} of {arch['trials']} AutoCTR trials failed (their errors are in "
                    "search/trials.jsonl); lower search.lr or search.widths if they diverged"]
        return []

    def architecture(self, arch: dict[str, Any], schema: Schema) -> dict[str, Any]:
        """The exported blocks, the DAG in words, and the trial counts."""
        return {"blocks": arch["blocks"], "dag": arch["dag"], "trials": arch["trials"], "failed": arch["failed"],
                "flops": arch["flops"], "params": arch["params"]}

    def html(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[str]:
        """The exported DAG's blocks and the ten best trials."""
        blocks = [[f"b{i}", b["type"], ", ".join(b["inputs"]), b["width"]] for i, b in enumerate(arch["blocks"])]
        best = sorted((t for t in arch["trace"] if t["status"] == "ok"), key=lambda t: t["valid_logloss"])[:10]
        rows = [[t["id"], t["origin"], t["valid_logloss"], t["valid_auc"], t["flops"], t["params"]] for t in best]
        return ["<h2>Exported DAG</h2>", table(blocks, ["block", "type", "inputs", "width"]),
                f"<p>{arch['dag'][-1]}</p>",
                "<h2>Best trials</h2>", table(rows, ["trial", "origin", "valid logloss", "valid AUC", "FLOPs/row",
                                                     "dense params"])]

    def plots(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[tuple[str, Any]]:
        """The Pareto fronts (valid logloss against FLOPs and against parameters) and the best-so-far curve."""
        plt = pyplot()
        ok = [t for t in arch["trace"] if t["status"] == "ok"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, key, label in ((axes[0], "flops", "FLOPs per row"), (axes[1], "params", "dense parameters")):
            pts = [(float(t[key]), float(t["valid_logloss"])) for t in ok]
            front = non_dominated(pts)
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, color="lightgray", label="trial")
            ax.scatter([p[0] for p, f in zip(pts, front, strict=True) if f],
                       [p[1] for p, f in zip(pts, front, strict=True) if f], s=18, color="tab:blue",
                       label="non-dominated")
            ax.scatter([arch[key]], [arch["valid_logloss"]], marker="*", s=160, color="tab:red", label="exported")
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("valid logloss (low fidelity)")
        axes[0].legend(fontsize=8)
        curve = plt.figure(figsize=(6, 3.2))
        ax = curve.add_subplot(1, 1, 1)
        ax.plot(range(1, len(arch["best_so_far"]) + 1), arch["best_so_far"], color="tab:blue", label=arch["strategy"])
        control = rep.get("control_arch", {}).get("best_so_far")
        if control:  # lab.control: the random search with the same trials
            ax.plot(range(1, len(control) + 1), control, color="tab:gray", label="random search (control)")
        ax.set_xlabel("trials")
        ax.set_ylabel("best valid logloss so far")
        ax.legend(fontsize=8)
        return [("Trials: validation logloss against cost (Pareto front)", fig), ("Best so far", curve)]
