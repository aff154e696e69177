"""Data-parallel training: sharded batches, the collectives, and `--nproc` jobs against one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from recnas.data.batches import BatchIterator
from recnas.errors import ConfigError
from recnas.train import distributed
from tests.network import free_port


def _arrays(n: int) -> dict[str, np.ndarray]:
    return {"cat": np.arange(n, dtype=np.int64)[:, None], "num": np.zeros((n, 0), np.float32),
            "num_bucket": np.zeros((n, 0), np.int64), "mv": np.zeros((n, 0, 1), np.int64),
            "mv_len": np.zeros((n, 0), np.int64), "y": np.arange(n, dtype=np.float32)}


@pytest.mark.parametrize(("n", "batch", "world", "window"), [(1000, 64, 2, None), (1003, 100, 3, None),
                                                              (999, 128, 2, 256), (1000, 256, 2, 96), (7, 4, 2, None)])
def test_shards_split_each_global_batch_into_disjoint_equal_parts(n: int, batch: int, world: int,
                                                                  window: int | None) -> None:
    for seed in (0, 1, 2):
        one = BatchIterator(_arrays(n), batch, seed=seed, shuffle_window=window, shuffle_block=32)
        shards = [one.shard(r, world) for r in range(world)]
        steps = len(shards[0])
        for epoch in (0, 3):
            whole = [b.cat[:, 0].tolist() for b in one.iter_epoch(epoch)]
            parts = [[b.cat[:, 0].tolist() for b in s.iter_epoch(epoch)] for s in shards]
            assert all(len(p) == steps for p in parts)  # every rank takes as many steps: no hang at an epoch's end
            for step, rows in enumerate(zip(*parts, strict=True)):
                union = sorted(r for part in rows for r in part)
                assert union == sorted(whole[step])  # together, the global batch of one process
                assert all(len(part) >= 2 for part in rows)  # batch norm trains on every rank's share
                assert max(map(len, rows)) - min(map(len, rows)) <= 1
            skipped = len(whole) - len(parts[0])
            assert skipped in (0, 1) and (skipped == 0 or len(whole[-1]) < 2 * world)
            resumed = [b.cat[:, 0].tolist() for b in shards[1].iter_epoch(epoch, start=1)]
            assert resumed == parts[1][1:]  # a resumed epoch continues where it stopped


def test_unshuffled_shards_cover_the_rows_once_in_order() -> None:
    for n, world in [(10, 3), (16384 * 2 + 5, 2), (1, 2)]:
        it = BatchIterator(_arrays(n), 4096, shuffle=False)
        rows = [r for rank in range(world) for b in it.shard(rank, world).iter_epoch(0) for r in b.cat[:, 0].tolist()]
        assert rows == list(range(n))


def _collectives(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)
    result: dict[str, object] = {}
    dense = torch.nn.Parameter(torch.zeros(3))
    dense.grad = torch.full((3,), float(rank + 1))
    unused = torch.nn.Parameter(torch.zeros(2))  # no gradient on rank 0: joins with zeros
    if rank == 1:
        unused.grad = torch.ones(2)
    table = torch.nn.Parameter(torch.zeros(5, 2))
    rows = torch.tensor([[0, 2]]) if rank == 0 else torch.tensor([[2, 4]])
    table.grad = torch.sparse_coo_tensor(rows, torch.ones(2, 2), (5, 2))
    lonely = torch.nn.Parameter(torch.zeros(4, 2))  # a sparse gradient on rank 1 only
    if rank == 1:
        lonely.grad = torch.sparse_coo_tensor(torch.tensor([[3]]), torch.ones(1, 2), (4, 2))
    distributed.average_gradients([dense, unused, table, lonely])
    result["lonely"] = lonely.grad.to_dense()[:, 1].tolist()
    result["dense"] = dense.grad.tolist()
    result["unused"] = unused.grad.tolist()
    result["table"] = table.grad.to_dense()[:, 0].tolist()
    y, s = distributed.gather_rows(np.arange(rank + 2, dtype=np.float32) + 10 * rank,
                                   np.full(rank + 2, rank, np.float32))
    result["gathered"] = y.tolist()
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))  # each rank its own init
    model[1].running_mean.fill_(float(rank))
    distributed.broadcast_model(model)
    result["weight"] = model[0].weight.flatten().tolist()
    model[1].running_mean.fill_(float(rank))
    distributed.average_buffers(model)
    result["running_mean"] = model[1].running_mean.tolist()

    def refuse() -> int:
        raise ConfigError("only rank 0 knows")

    try:
        distributed.main_first(refuse)
    except ConfigError as e:
        result["error"] = str(e)
    result["same"] = [distributed.same_on_every_rank({"a": 1}), distributed.same_on_every_rank(rank)]
    result["mean"] = distributed.mean_over_ranks(float(rank))
    Path(out, f"{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def test_collectives_average_gather_and_share_errors(tmp_path: Path) -> None:
    mp.spawn(_collectives, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    for r in (r0, r1):
        assert r["dense"] == [1.5, 1.5, 1.5]
        assert r["unused"] == [0.5, 0.5]
        assert r["table"] == [0.5, 0.0, 1.0, 0.0, 0.5]  # row 2 in both batches
        assert r["lonely"] == [0.0, 0.0, 0.0, 0.5]
        assert r["gathered"] == [0.0, 1.0, 10.0, 11.0, 12.0]  # rank order, uneven counts
        assert r["running_mean"] == [0.5, 0.5]
        assert r["error"] == "only rank 0 knows"  # rank 1 raises rank 0's error instead of waiting
        assert r["same"] == [True, False]
        assert r["mean"] == 0.5
    assert r0["weight"] == r1["weight"]


def _recnas(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recnas", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


FAST = ["--set", "threads=1", "--set", "trainer.progress=false", "--set", "trainer.batch_size=256",
        "--set", "trainer.epochs=2"]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out + [g for c in out for g in _children(c)]


def test_two_processes_train_what_one_trains_and_a_killed_rank_resumes(synth_dir: Path, tmp_path: Path) -> None:
    """A rank killed mid-epoch stops the job with one line; the same command resumes and ends where one process does.

    FM has no dropout or batch norm, so the averaged gradient of two halves is the gradient of the whole batch.
    """
    env = {**os.environ, "RECNAS_CACHE_DIR": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "recnas", "train", "--data", str(synth_dir), "--model", "fm", "--out",
            str(tmp_path / "run"), "--set", "threads=1", "--set", "trainer.progress=false", "--set",
            "trainer.batch_size=16", "--set", "trainer.epochs=2", "--set", "trainer.checkpoint_every=20",
            "--nproc", "2"]
    job = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "checkpoint.pt").is_file():
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before its first checkpoint"
        time.sleep(0.05)
    ranks = [c for c in _children(job.pid) if "recnas" in Path(f"/proc/{c}/cmdline").read_text()]
    assert len(ranks) == 2
    os.kill(ranks[-1], signal.SIGKILL)
    _, err = job.communicate(timeout=60)  # no hang: the launcher stops the other rank
    assert job.returncode == 2
    assert f"(pid {ranks[-1]}) was killed by SIGKILL" in err and "run the same command to resume" in err
    assert "Traceback" not in err
    resumed = _recnas(*args[3:], env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and resumed.stdout.count("test AUC") == 1  # rank 0 alone prints
    one = _recnas(*[a if a != str(tmp_path / "run") else str(tmp_path / "one") for a in args[3:-2]], env=env)
    assert one.returncode == 0, one.stderr
    m, w = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("run", "one"))
    assert m["processes"] == 2 and w["processes"] == 1
    assert abs(m["test_auc"] - w["test_auc"]) < 1e-6 and abs(m["test_logloss"] - w["test_logloss"]) < 1e-6
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_a_rank_that_cannot_reach_the_rendezvous_names_it(synth_dir: Path, tmp_path: Path) -> None:
    port = free_port()  # nobody listens there
    t0 = time.monotonic()
    res = _recnas("train", "--data", str(synth_dir), "--model", "fm", "--out", str(tmp_path / "r"), *FAST,
                  env={"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port), "RECNAS_DIST_TIMEOUT": "2"}, timeout=60)
    assert res.returncode == 2
    assert f"rank 1: error: rank 1 could not join the others at 127.0.0.1:{port} within 2 s" in res.stderr
    assert res.stderr.strip().count("\n") == 0 and time.monotonic() - t0 < 30
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("method", ["autofis", "autodim"])  # one-level GRDA gates; bi-level Gumbel-softmax
def test_a_one_shot_search_runs_data_parallel_and_others_refuse(method: str, synth_dir: Path, tmp_path: Path) -> None:
    """Every rank ends with the same architecture parameters (the search compares them before writing arch.json).

    AutoFIS without dropout draws nothing at random, so 2 processes find what 1 finds; AutoDim's Gumbel noise is
    each rank's own (like dropout), so its search is another draw.
    """
    env = {"RECNAS_CACHE_DIR": str(tmp_path / "cache")}
    config = Path(__file__).parents[2] / "configs" / f"{method}_synth.yaml"
    common = ["search", str(config), "--data", str(synth_dir), "--quiet", *FAST, "--set", "search.epochs=2",
              "--set", "trainer.epochs=1", "--set", "search.warmup_epochs=1",
              "--set", "model.dropout=0", "--set", "search.baseline=false"]
    two = _recnas(*common, "--out", str(tmp_path / "two"), "--nproc", "2", env=env)
    assert two.returncode == 0, two.stderr
    a2 = json.loads((tmp_path / "two" / "search" / "arch.json").read_text())
    assert json.loads((tmp_path / "two" / "retrain" / "metrics.json").read_text())["processes"] == 2
    if method == "autodim":
        assert all(abs(sum(p) - 1) < 1e-5 for p in a2["probs"].values())
        return
    one = _recnas(*common, "--out", str(tmp_path / "one"), env=env)
    assert one.returncode == 0, one.stderr
    a1 = json.loads((tmp_path / "one" / "search" / "arch.json").read_text())
    assert a2["sample"] == a1["sample"]
    for g1, g2 in zip(a1["probs"].values(), a2["probs"].values(), strict=True):
        assert np.allclose(g1, g2, atol=1e-4)
    nis = _recnas("search", str(Path(config).with_name("nis_synth.yaml")), "--data", str(synth_dir), *FAST,
                  "--out", str(tmp_path / "nis"), "--nproc", "2", env=env)
    assert nis.returncode == 2
    assert "search.method=nis does not run data-parallel" in nis.stderr and "Traceback" not in nis.stderr
