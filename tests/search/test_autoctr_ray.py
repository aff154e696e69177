"""AutoCTR's trials on Ray: a worker dying mid-trial, an unreachable cluster, and two Ray nodes on localhost."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from recnas.errors import ConfigError
from recnas.experiment.config import load_config
from recnas.methods.autoctr import AutoCTR
from recnas.search.trials import RayRunner, TrialStore
from tests.network import free_port

ray = pytest.importorskip("ray")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
RAY = str(Path(sys.executable).with_name("ray"))


def dies_once(shared, job):  # noqa: ANN001, ANN201
    """Kills its own worker the first time it runs (a marker file remembers), then succeeds."""
    marker = Path(shared) / f"ran-{job['id']}"
    if job["id"] == 0 and not marker.exists():
        marker.write_text("x")
        os._exit(1)
    if job["id"] == 1:
        os._exit(1)  # dies on every attempt
    return {"valid_logloss": 0.5}


def test_a_dead_worker_is_retried_then_recorded_as_failed_and_the_other_trials_go_on(tmp_path: Path) -> None:
    runner = RayRunner("local", cpus_per_trial=1, local_cpus=2, retries=1)
    try:
        recs = {r["id"]: r for r in runner.run(dies_once, runner.share(str(tmp_path)), [{"id": i} for i in range(3)])}
    finally:
        runner.close()
    assert not ray.is_initialized()
    assert recs[0]["status"] == "ok"  # retried after its worker died
    assert recs[1]["status"] == "failed", recs[1]
    assert any(w in recs[1]["error"].lower() for w in ("died", "crash", "exit")), recs[1]["error"]
    assert recs[2]["status"] == "ok"


def test_an_unreachable_ray_address_is_a_clear_error_naming_it() -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"search.ray_address: cannot reach a Ray cluster at 127.0.0.1:9"):
        RayRunner("127.0.0.1:9")
    with pytest.raises(ConfigError, match=r"not host:port"):
        RayRunner("nowhere")
    assert time.perf_counter() - start < 15


def start_node(*args: str) -> subprocess.Popen:
    """`ray start --block ...` in its own process group: stopping the group stops that node alone (unlike `ray stop`,
    which stops every Ray process on the machine)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop_node(node: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s: a head node given SIGTERM can hang on for half a minute or more."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
        try:
            os.killpg(node.pid, sig)
            node.wait(timeout=wait)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def wait_for_nodes(address: str, count: int, timeout: float = 90) -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([RAY, "status", "--address", address], capture_output=True, text=True, env=env)
        if out.returncode == 0 and out.stdout.count(" node_") >= count:
            return
        time.sleep(1)
    raise TimeoutError(f"{count} Ray nodes did not come up at {address}")


@pytest.mark.skipif(shutil.which(RAY) is None and not Path(RAY).exists(), reason="no ray command")
def test_a_search_on_two_ray_nodes_on_localhost_runs_trials_on_both(prepared, tmp_path: Path) -> None:  # noqa: ANN001
    address = f"127.0.0.1:{free_port()}"
    head = start_node("--head", "--port", address.split(":")[1], "--include-dashboard", "false")
    nodes = [head]
    try:
        wait_for_nodes(address, 1)
        nodes.append(start_node("--address", address))
        wait_for_nodes(address, 2)
        cfg = load_config(None, ["search.method=autoctr", "model.name=autoctr", "model.embedding_dim=4",
                                 "search.trials=6", "search.population=3", "search.ranker=false", "search.blocks=2",
                                 "search.trial_epochs=1", "search.trial_rows=1000", "search.trial_valid_rows=500",
                                 "search.widths=[8]", f"search.ray_address={address}", "threads=1"])
        records, _ = AutoCTR(cfg).run_trials(SimpleNamespace(ds=prepared), tmp_path, "evolution", lambda _m: None)
        local = RayRunner("local", local_cpus=1)  # with a cluster up, "local" still starts a Ray of its own
        assert local.workers == 1
        local.close()
    finally:
        for node in reversed(nodes):
            stop_node(node)
    assert not ray.is_initialized()  # the driver disconnected
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    ran_on = {r["node"] for r in TrialStore(tmp_path / "trials.jsonl").read().values()}
    assert len(ran_on) == 2, ran_on  # each trial names its node, and both nodes ran some
