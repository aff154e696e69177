"""`--nproc N`: run a `recnas` command as a data-parallel job of N processes on this machine.

The same as `torchrun --standalone --nproc_per_node N -m recnas ...` (torch's elastic launcher, called in-process),
except that a failed job ends with one line saying which rank stopped and how, instead of the launcher's
traceback. Several machines: start `torchrun --nnodes M --node_rank i --rdzv-endpoint HOST:PORT -m recnas ...` on
each (docs/scaling.md).
"""

from __future__ import annotations

import logging
import signal
import sys
import uuid
from collections.abc import Sequence

from recnas.errors import ConfigError


def strip_option(argv: Sequence[str], name: str) -> list[str]:
    """`argv` without `name VALUE` or `name=VALUE` (the launched processes must not launch again)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def _how(failure: object) -> str:
    code = getattr(failure, "exitcode", None)
    if isinstance(code, int) and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def launch_local(nproc: int, argv: Sequence[str], what: str) -> int:
    """Run `python -m recnas <argv>` in `nproc` processes that form one job; returns the exit code.

    `what` names the command for the message of a failed job ("train", "search"): the run folder keeps its last
    checkpoint, so the same command resumes.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2,
                          start_method="spawn")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its failure lines: ours below
    try:
        elastic_launch(config, sys.executable)("-m", "recnas", *argv)
    except ChildFailedError as e:  # name the rank that failed first: killed by a signal, else the earliest
        rank, failure = min(e.failures.items(), key=lambda kv: (getattr(kv[1], "exitcode", 0) >= 0,
                                                                 getattr(kv[1], "timestamp", 0), kv[0]))
        pid = getattr(failure, "pid", "?")
        print(f"error: the {what} job of {nproc} processes stopped: rank {rank} (pid {pid}) {_how(failure)}, "
              f"and the others were stopped with it; the run folder keeps its last checkpoint: run the same "
              f"command to resume", file=sys.stderr)
        return 2
    return 0
