"""Trials of a sample-based search: where they run (in process, or as Ray tasks) and how they are recorded.

A trial is a plain function `fn(shared, job) -> dict` run on a worker; `shared` (the trial data, the same for
every trial) is sent once: in process it is an argument, on Ray it is put in the object store once and each node
fetches it once. A trial that raises, or whose worker dies twice, comes back as a record with `status: failed`
and its error; it never stops the search. Each finished trial is appended to `trials.jsonl` as one line written
and flushed in one call, so a kill loses at most the trials still running; `TrialStore.read` skips a torn last line.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from recnas.errors import ConfigError, DataError

TrialFn = Callable[[Any, Mapping[str, Any]], dict[str, Any]]


def run_one(fn: TrialFn, shared: Any, job: Mapping[str, Any]) -> dict[str, Any]:
    """`fn(shared, job)` with its time and node; an exception becomes a failed record (never raised)."""
    start = time.perf_counter()
    try:
        result = {"status": "ok", **fn(shared, job)}
    except Exception as e:  # noqa: BLE001  (a trial's failure is recorded, whatever it is)
        frames = traceback.extract_tb(e.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        result = {"status": "failed", "error": f"{type(e).__name__}: {str(e)[:300]}{where}"}
    return {**job, **result, "seconds": round(time.perf_counter() - start, 3), "node": node_name()}


def node_name() -> str:
    """This process's node: the Ray node id (short) where it runs on Ray, plus the host name."""
    host = socket.gethostname()
    try:
        import ray

        if ray.is_initialized():
            return f"{ray.get_runtime_context().get_node_id()[:12]}@{host}"
    except ImportError:
        pass
    return f"local@{host}"


class TrialStore:
    """`trials.jsonl`: one JSON line per finished trial, keyed by its `id`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[int, dict[str, Any]]:
        """Every complete line by trial id (a torn last line, from a kill mid-write, is skipped)."""
        if not self.path.is_file():
            return {}
        out: dict[int, dict[str, Any]] = {}
        lines = self.path.read_text().split("\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines):  # the last line, cut by a kill: that trial runs again
                    continue
                raise DataError(f"{self.path}:{n}: not a JSON line; the trials file is damaged: delete it (or the "
                                "line) to run those trials again") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), int):
                raise DataError(f"{self.path}:{n}: a trial record needs an integer 'id'; delete the line to run that "
                                "trial again")
            out[rec["id"]] = rec
        return out

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record in a single write, then flush it to disk (a torn last line is cut off first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cut_torn_tail()
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _cut_torn_tail(self) -> None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = f.seek(0) or f.read()
            f.truncate(data.rfind(b"\n") + 1)  # the record a kill cut short: its trial runs again


class InlineRunner:
    """Trials one after another in this process (no Ray): for tests, debugging and one-core machines."""

    workers = 1

    def share(self, shared: Any) -> Any:
        """The shared data itself."""
        return shared

    def run(self, fn: TrialFn, shared: Any, jobs: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """Each job's record, in order."""
        for job in jobs:
            yield run_one(fn, shared, job)

    def close(self) -> None:
        """Nothing to stop."""


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when a `host:port` Ray address does not answer."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"search.ray_address: {address!r} is not host:port, 'auto' or 'local'")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"search.ray_address: cannot reach a Ray cluster at {address} ({e.strerror or e}); start "
                          f"one there (`ray start --head --port {port}`), fix the address, or set "
                          "search.ray_address=local") from None


class RayRunner:
    """Trials as Ray tasks of `cpus_per_trial` CPUs each; the search stays in this (driver) process.

    `address`: `local` starts Ray in this process with `local_cpus` CPUs (stopped by `close`); `auto` or
    `host:port` joins a running cluster (the `RAY_ADDRESS` variable too, when `address` is None).
    """

    def __init__(self, address: str | None, cpus_per_trial: int = 1, local_cpus: int | None = None,
                 retries: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("AutoCTR runs its trials on Ray: pip install 'recnas[ray]' (or ray[default]), or set "
                              "search.executor=inline to run them in this process") from None
        self.ray = ray
        self.cpus, self.retries = int(cpus_per_trial), int(retries)
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        self.started = False
        if ray.is_initialized():
            pass
        elif address == "local":
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            # address="local": a new Ray of this process's own, even where another Ray runs on the machine
            ray.init(address="local", num_cpus=local_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
            self.started = True
        else:
            if address != "auto":
                check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
                self.started = True  # connected by this runner: `close` disconnects (the cluster runs on)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(f"search.ray_address: cannot join the Ray cluster at {address!r} "
                                  f"({str(e).splitlines()[0][:200]}); start one (`ray start --head`), fix the "
                                  "address, or set search.ray_address=local") from None
        total = int(ray.cluster_resources().get("CPU", 0))
        if total < self.cpus:
            self.close()
            raise ConfigError(f"search.cpus_per_trial={self.cpus} but the Ray cluster has {total} CPUs; lower it")
        self.workers = max(total // self.cpus, 1)
        self.task = ray.remote(num_cpus=self.cpus, max_retries=self.retries)(run_one)  # exported once

    def share(self, shared: Any) -> Any:
        """Put the shared data in the object store once; tasks receive a reference."""
        return self.ray.put(shared)

    def run(self, fn: TrialFn, shared: Any, jobs: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """Each job's record as it finishes (a dead worker's trial is retried `retries` times, then failed)."""
        ray = self.ray
        pending = {self.task.remote(fn, shared, dict(job)): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker died (retries spent) or the task was lost
                    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                    yield {**job, "status": "failed", "error": f"{type(e).__name__}: {reason}", "seconds": None,
                           "node": None}

    def close(self) -> None:
        """Stop the local Ray this runner started, or disconnect from the cluster it joined."""
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
            self.started = False


__all__ = ["InlineRunner", "RayRunner", "TrialStore", "check_reachable", "node_name", "run_one"]
