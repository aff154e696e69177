"""Create the peers venv (FuxiCTR 2.3.10 + DeepCTR-Torch 0.3.0 on the CPU torch 2.13.0), idempotently.

Runs in any Python; the venv itself is built with python3.11. torch goes in first, and every later
install runs under a constraints file that pins torch==2.13.0, so nothing can swap in a CUDA build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

TORCH_PIN = "torch==2.13.0"
# Why each pin (see shared/reference/PEERS.md): fuxictr 2.3.10 pulls polars 2.x, whose scan_csv dropped
# `dtypes` (ArgumentRemovedError in build_dataset), so polars<2; deepctr-torch 0.3.0 imports `requests`
# without declaring it.
STEPS: list[list[str]] = [
    [TORCH_PIN],
    ["fuxictr==2.3.10", "polars<2"],
    ["deepctr-torch==0.3.0", "requests"],
]
CHECK = (
    "import json, torch, fuxictr, deepctr_torch, polars, ray; "
    "print(json.dumps({'torch': torch.__version__, 'fuxictr': fuxictr.__version__, "
    "'deepctr_torch': deepctr_torch.__version__, 'polars': polars.__version__, 'ray': ray.__version__}))"
)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def stamp_path(venv: Path) -> Path:
    return venv / "recnas_peers_stamp.json"


def wanted_stamp() -> dict:
    return {"steps": STEPS}


def is_ready(venv: Path) -> bool:
    stamp = stamp_path(venv)
    if not (stamp.is_file() and venv_python(venv).is_file()):
        return False
    try:
        return json.loads(stamp.read_text()).get("steps") == wanted_stamp()["steps"]
    except ValueError:
        return False


def installed_versions(venv: Path) -> dict:
    out = subprocess.run([str(venv_python(venv)), "-c", CHECK], check=True, capture_output=True, text=True,
                         env={"RAY_AUTH_MODE": "disabled", "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def setup(venv: Path, python: str = "python3.11", force: bool = False) -> dict:
    """Build the venv unless its stamp says it is already there; return the installed versions."""
    if is_ready(venv) and not force:
        versions = installed_versions(venv)
        print(f"peers venv ready at {venv} (stamp found): {versions}")
        return versions
    if force and venv.exists():
        shutil.rmtree(venv)
    exe = shutil.which(python)
    if exe is None:
        raise SystemExit(f"{python} not found: the peers venv needs Python 3.11")
    if not venv_python(venv).is_file():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([exe, "-m", "venv", str(venv)], check=True)
    constraints = venv / "torch-constraints.txt"
    constraints.write_text(TORCH_PIN + "\n")
    pip = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-c", str(constraints)]
    for step in STEPS:
        print("+ pip install " + " ".join(step), flush=True)
        subprocess.run(pip + step, check=True)
    versions = installed_versions(venv)
    if not versions["torch"].startswith("2.13.0") or "+cpu" not in versions["torch"]:
        raise SystemExit(f"peers venv got torch {versions['torch']}, expected 2.13.0+cpu")
    stamp_path(venv).write_text(json.dumps({**wanted_stamp(), "versions": versions}, indent=1) + "\n")
    print(f"peers venv ready at {venv}: {versions}")
    return versions


if __name__ == "__main__":
    setup(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / ".peers" / "venv")
