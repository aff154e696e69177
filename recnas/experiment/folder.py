"""Run folders: one process at a time (a lock naming its holder), and a config that a resumed run must not change.

The lock is an advisory `flock` on `<run>/.lock`, which the kernel releases when its process ends, however it ends:
a folder whose holder was killed (kill -9 included) is taken over by the next command, which says so. The file keeps
the holder's pid, host and start time so a refused command can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from recnas.errors import ConfigError
from recnas.fileio import write_text_atomic
from recnas.train import distributed

LOCK_NAME = ".lock"


class RunFolderBusy(ConfigError):
    """Another process is working in this run folder."""


def make_run_dir(run_dir: Path) -> None:
    """Create the run folder, or say plainly why it cannot be one (a file there, an unwritable parent)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: --out names an existing file, not a folder; pass a folder path")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{run_dir}: a part of this path is a file, not a folder; pass another --out") from None
    except PermissionError:
        raise ConfigError(f"{run_dir}: no permission to create this folder; pass another --out") from None


def _holder(text: str) -> str:
    try:
        h = json.loads(text)
        return f"pid {h['pid']} on {h['host']}, started {h['started']}"
    except (ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def run_folder_lock(run_dir: Path, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold `run_dir` for this process (or data-parallel job); a second holder fails at once naming the first.

    In a data-parallel job rank 0 holds it for every rank, and a refusal reaches every rank.
    """
    if not distributed.active():
        with _process_lock(run_dir, log):
            yield
        return
    with ExitStack() as held:
        distributed.main_first(lambda: held.enter_context(_process_lock(run_dir, log)))
        yield


@contextmanager
def _process_lock(run_dir: Path, log: Callable[[str], None] | None) -> Iterator[None]:
    make_run_dir(run_dir)
    path = run_dir / LOCK_NAME
    fh = open(path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise RunFolderBusy(f"{run_dir} is in use by {_holder(fh.read())}; wait for it to finish, or pass "
                                "another --out") from None
        fh.seek(0)
        previous = fh.read().strip()
        if previous and log is not None:  # the last holder ended without releasing: killed, or crashed
            log(f"taking over {run_dir} from {_holder(previous)}, which is no longer running")
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()  # a clean end leaves no holder behind
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def comparable_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A config without what does not change results.

    That is the progress bar, and the data path and cache folder as spelled (the data itself is checked by its
    cache key).
    """
    raw = json.loads(json.dumps(raw))
    raw.get("trainer", {}).pop("progress", None)
    raw.get("data", {}).pop("path", None)
    raw.get("data", {}).pop("cache_dir", None)
    return raw


def _saved_config(path: Path, run_dir: Path, what: str) -> dict[str, Any]:
    """A run folder's config.yaml, read through the current config model.

    So a key added since (whose default keeps the old behaviour) does not make an unchanged run look different.
    """
    from recnas.experiment.run import load_config_file

    try:
        return load_config_file(path).model_dump(mode="json")
    except ConfigError as e:
        raise ConfigError(f"{run_dir} holds a run whose config this version of recnas cannot read ({e}); pass a "
                          f"new --out (or delete the folder) to {what}") from None


def claim_folder(run_dir: Path, cfg: Any, data_key: str, what: str) -> None:
    """Write config.yaml and the data's cache key, or check that an existing run used the same of both.

    A resumed run must change neither; `what` says what a new --out would do ("start another search").
    """
    resolved = cfg.model_dump(mode="json")
    text = yaml.safe_dump(resolved, sort_keys=False)
    path, key_path = run_dir / "config.yaml", run_dir / "data_key.txt"
    if path.is_file() and comparable_settings(_saved_config(path, run_dir, what)) != comparable_settings(resolved):
        raise ConfigError(f"{run_dir} holds a run with a different config; pass a new --out (or delete the folder) "
                          f"to {what}")
    if key_path.is_file() and key_path.read_text().strip() != data_key:
        raise ConfigError(f"{run_dir} holds a run on different data (the files under {cfg.data.path} changed); "
                          f"pass a new --out (or delete the folder) to {what}")
    make_run_dir(run_dir)
    write_text_atomic(path, text)  # a kill mid-write must not leave a config.yaml a resume cannot read
    write_text_atomic(key_path, data_key + "\n")
