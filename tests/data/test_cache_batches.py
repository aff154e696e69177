from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recnas.data.batches import BatchIterator
from recnas.data.cache import load_prepared, prepare
from recnas.data.processor import FeatureProcessor
from recnas.data.source import open_dataset


def test_prepare_twice_is_a_noop(synth_dir: Path, tmp_path: Path) -> None:
    first = prepare(open_dataset(synth_dir), tmp_path)
    assert not first.reused
    stamp = os.stat(first.path / "manifest.json").st_mtime_ns
    second = prepare(open_dataset(synth_dir), tmp_path)
    assert second.reused and second.path == first.path
    assert os.stat(first.path / "manifest.json").st_mtime_ns == stamp
    left = [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    assert left == [first.path.name]  # no temp folder left over


def _prepare_and_read(synth_dir: Path, root: Path, rounds: int) -> list[int]:
    """Rebuild the cache `rounds` times, reading every array back in full after each build."""
    rows = []
    for _ in range(rounds):
        ds = prepare(open_dataset(synth_dir), root, force=True)
        rows.append(load_prepared(ds.path, verify="full").rows("valid"))
        rows.append(prepare(open_dataset(synth_dir), root).rows("valid"))
    return rows


def test_processes_preparing_one_dataset_at_once_take_turns(synth_dir: Path, tmp_path: Path) -> None:
    # parallel tuning trials prepare the same dataset: none may read a folder another is replacing
    with multiprocessing.get_context("fork").Pool(3) as pool:
        results = pool.starmap(_prepare_and_read, [(synth_dir, tmp_path, 4)] * 3)
    expected = prepare(open_dataset(synth_dir), tmp_path).rows("valid")
    assert all(rows == [expected] * 8 for rows in results)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        prepare(open_dataset(synth_dir), tmp_path).path.name]


def test_cached_arrays_equal_in_memory_encoding(synth_dir: Path, tmp_path: Path) -> None:
    src = open_dataset(synth_dir)
    ds = prepare(src, tmp_path)
    proc = FeatureProcessor(src.schema)
    proc.fit(src.train)
    arrays, rep = proc.transform(src.splits["valid"])
    for k, v in arrays.items():
        np.testing.assert_array_equal(np.asarray(ds.splits["valid"][k]), v)
    assert ds.manifest["splits"]["valid"]["oov"] == rep.oov
    reloaded = load_prepared(ds.path)
    assert isinstance(reloaded.splits["train"]["cat"], np.memmap)
    assert reloaded.schema == ds.schema


def test_options_change_the_key(synth_dir: Path, tmp_path: Path) -> None:
    a = prepare(open_dataset(synth_dir), tmp_path, on_bad_row="error")
    b = prepare(open_dataset(synth_dir), tmp_path, on_bad_row="skip")
    assert a.path != b.path


def toy_arrays(n: int) -> dict[str, np.ndarray]:
    return {
        "cat": np.arange(n, dtype=np.int64).reshape(n, 1).repeat(2, 1), "num": np.zeros((n, 1), np.float32),
        "num_bucket": np.zeros((n, 0), np.int64), "mv": np.zeros((n, 1, 3), np.int64),
        "mv_len": np.zeros((n, 1), np.int64), "y": np.arange(n, dtype=np.float32),
    }


def test_shuffled_epoch_covers_every_row_once_and_is_seeded() -> None:
    it = BatchIterator(toy_arrays(103), batch_size=10, shuffle=True, seed=7)
    assert len(it) == 11
    e0 = torch.cat([b.y for b in it])
    e1 = torch.cat([b.y for b in it])
    assert sorted(e0.tolist()) == list(range(103))
    assert not torch.equal(e0, e1)  # a new permutation each epoch
    again = BatchIterator(toy_arrays(103), batch_size=10, shuffle=True, seed=7)
    assert torch.equal(torch.cat([b.y for b in again]), e0)
    b = next(iter(BatchIterator(toy_arrays(103), batch_size=10, seed=7)))
    assert b.cat.dtype == torch.int64 and b.cat.shape == (10, 2) and b.mv.shape == (10, 1, 3)
    assert torch.equal(b.cat[:, 0].float(), b.y)  # rows stay aligned across arrays


def test_unshuffled_batches_are_in_order_and_drop_last() -> None:
    it = BatchIterator(toy_arrays(25), batch_size=10, shuffle=False, drop_last=True)
    ys = [b.y.tolist() for b in it]
    assert len(ys) == 2 == len(it)
    assert ys[0] == list(range(10)) and ys[1] == list(range(10, 20))


@pytest.mark.parametrize(("n", "batch", "window", "block", "drop_last"), [
    (1003, 10, 100, 10, False), (1003, 64, 250, 7, True), (500, 37, 500, 500, False), (99, 200, 40, 9, False)])
def test_block_wise_shuffle_serves_every_row_once_seeded_resumable_and_local(
        n: int, batch: int, window: int, block: int, drop_last: bool) -> None:
    def order(epoch: int, start: int = 0, seed: int = 7) -> list[np.ndarray]:
        it = BatchIterator(toy_arrays(n), batch, True, seed, drop_last, shuffle_window=window, shuffle_block=block)
        return [b.y.numpy().astype(np.int64) for b in it.iter_epoch(epoch, start)]

    e0 = order(0)
    rows = np.concatenate(e0)
    served = n - n % batch if drop_last else n
    assert len(e0) == len(BatchIterator(toy_arrays(n), batch, drop_last=drop_last)) and len(rows) == served
    assert len(set(rows.tolist())) == served and (drop_last or sorted(rows.tolist()) == list(range(n)))
    assert all(len(b) == batch for b in e0[:-1])
    assert all(np.array_equal(a, b) for a, b in zip(order(0), e0, strict=True))  # the same seed, the same batches
    assert not np.array_equal(np.concatenate(order(1)), rows[: len(np.concatenate(order(1)))]) or n <= block
    assert not np.array_equal(np.concatenate(order(0, seed=8)), rows) or n <= block
    for start in (1, len(e0) // 2, len(e0) - 1):  # a fit resumed after batch `start` sees the rest of the epoch
        assert all(np.array_equal(a, b) for a, b in zip(order(0, start), e0[start:], strict=True))
    # locality: a window's rows come from at most window // block blocks, so any run of that many rows of the
    # order (which meets at most two windows) reads at most twice as many blocks
    per_window = max(window // block, 1)
    full = BatchIterator(toy_arrays(n), batch, True, 7, False, window, block).permutation(0).numpy()
    for lo in range(0, n, per_window * block // 2 + 1):
        assert len(set((full[lo: lo + per_window * block] // block).tolist())) <= 2 * per_window


def test_block_settings_are_checked_and_train_reproducibly(synth_dir: Path, tmp_path: Path) -> None:
    from recnas.errors import ConfigError
    from recnas.experiment.config import load_config
    from recnas.experiment.run import run_train

    with pytest.raises(ConfigError, match="data.shuffle_block"):
        load_config(None, ["data.shuffle_window=100", "data.shuffle_block=200"])
    sets = [f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'cache'}", "model.name=deepfm", "trainer.epochs=6",
            "trainer.progress=false", "threads=1", "trainer.batch_size=256", "trainer.lr=0.003"]
    block = [*sets, "data.shuffle_window=1024", "data.shuffle_block=64"]
    a = run_train(load_config(None, block), tmp_path / "a", log=lambda _m: None).metrics
    b = run_train(load_config(None, block), tmp_path / "b", log=lambda _m: None).metrics
    assert a["test_auc"] == b["test_auc"] and a["test_auc"] > 0.6  # reproducible, and it learns


def test_prepared_dataset_batches(synth_dir: Path, tmp_path: Path) -> None:
    ds = prepare(open_dataset(synth_dir), tmp_path)
    batch = next(iter(ds.batches("train", batch_size=64, seed=1)))
    schema = ds.schema
    assert batch.cat.shape == (64, len(schema.categorical))
    assert batch.num.shape == (64, len(schema.numerical))
    assert batch.mv.shape == (64, len(schema.multi_categorical), schema.max_len)
    assert batch.y.dtype == torch.float32
    for j, f in enumerate(schema.categorical):
        assert 0 < int(batch.cat[:, j].min()) and int(batch.cat[:, j].max()) < f.cardinality


def _resident_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of `path` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isdigit() or line[:1] in "abcdef" and "-" in line.split()[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_reading_memory_mapped_data_in_windows_keeps_resident_memory_bounded(tmp_path: Path) -> None:
    """Block-wise epochs and unshuffled scoring drop the mapped pages they have read; the data stays the same.

    A fault maps a whole page-cache folio (up to 2 MiB here); the file is 64 MiB, and without the release an epoch
    leaves all of it resident.
    """
    n, width = 1 << 20, 8
    cat = np.memmap(tmp_path / "cat.bin", dtype=np.int64, mode="w+", shape=(n, width))
    cat[:] = np.arange(n * width, dtype=np.int64).reshape(n, width)
    cat.flush()
    del cat
    arrays = {"cat": np.memmap(tmp_path / "cat.bin", dtype=np.int64, mode="c", shape=(n, width)),
              "num": np.zeros((n, 0), np.float32), "num_bucket": np.zeros((n, 0), np.int64),
              "mv": np.zeros((n, 0, 1), np.int64), "mv_len": np.zeros((n, 0), np.int64),
              "y": np.zeros(n, np.float32)}
    size_kib = (tmp_path / "cat.bin").stat().st_size // 1024
    windowed = BatchIterator(arrays, 4096, seed=1, shuffle_window=32_768, shuffle_block=4096)
    peak = 0
    for i, b in enumerate(windowed.iter_epoch(0)):
        expected = b.cat[:, :1] * 0 + (b.cat[:, :1] // width) * width + torch.arange(width)
        assert torch.equal(b.cat, expected)  # whole rows, read again after their pages were dropped
        if i % 16 == 0:
            peak = max(peak, _resident_kib(tmp_path / "cat.bin"))
    assert peak < size_kib / 8, (peak, size_kib)  # the window is copied out, then its pages dropped
    peak = 0
    for i, b in enumerate(BatchIterator(arrays, 16_384, shuffle=False).iter_epoch(0)):
        assert int(b.cat[0, 0]) == i * 16_384 * width
        peak = max(peak, _resident_kib(tmp_path / "cat.bin"))
    assert peak < size_kib / 4, (peak, size_kib)  # one batch of 1 MiB, and the folios read ahead of it
