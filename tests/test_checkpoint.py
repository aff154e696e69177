"""The shared checkpoint loader: damaged, foreign or mismatched files are one CacheError naming the file."""

from pathlib import Path

import pytest
import torch
from torch import nn

from recnas.checkpoint import resume_from
from recnas.errors import CacheError


def _restore_into(model: nn.Module):  # noqa: ANN202
    def restore(blob: dict) -> int:
        model.load_state_dict(blob["model"])
        return int(blob["step"])
    return restore


def test_a_good_checkpoint_is_restored(tmp_path: Path) -> None:
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    torch.save({"model": src.state_dict(), "step": 7}, tmp_path / "c.pt")
    assert resume_from(tmp_path / "c.pt", _restore_into(dst), "fit") == 7
    torch.testing.assert_close(dst.weight, src.weight)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_shape", "missing_key", "not_a_dict"])
def test_a_damaged_checkpoint_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "c.pt"
    blob = {"model": nn.Linear(3, 2).state_dict(), "step": 7}
    if damage == "other_shape":
        blob["model"] = nn.Linear(4, 2).state_dict()
    if damage == "missing_key":
        del blob["step"]
    torch.save([1, 2] if damage == "not_a_dict" else blob, path)
    if damage == "garbage":
        path.write_bytes(b"\x00\x01 not a torch file")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CacheError, match=r"c\.pt: cannot resume the fit from this checkpoint \(.+\); delete it"):
        resume_from(path, _restore_into(nn.Linear(3, 2)), "fit")
