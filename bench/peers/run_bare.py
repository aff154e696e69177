"""Bare PyTorch DeepFM: the speed ceiling of the peer comparison (runs in the recnas venv, no recnas import).

No framework: pre-encoded int64 tensors with per-field offsets into one `nn.Embedding(total, dim)` and one
`nn.Embedding(total, 1)` for the first-order weights, FM as 0.5 * ((sum e)^2 - sum e^2), an MLP of
Linear/ReLU/Dropout, `BCEWithLogitsLoss`, one Adam over everything with FuxiCTR's full-table embedding L2,
and each epoch a `randperm` sliced into batches. Init as FuxiCTR: embeddings normal(0, 1e-4), Xavier-normal
linears with zero bias. No gradient clipping.

    python bench/peers/run_bare.py --spec '{...}' --out result.json
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from common import (
    auc_logloss,
    base_versions,
    load_encoded,
    parse_worker_args,
    seed_all,
    set_threads,
    train_with_plateau,
    write_result,
)
from torch import nn


class BareDeepFM(nn.Module):
    def __init__(self, total_ids: int, n_fields: int, dim: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        self.emb = nn.Embedding(total_ids, dim)
        self.first_order = nn.Embedding(total_ids, 1)
        self.bias = nn.Parameter(torch.zeros(1))
        layers: list[nn.Module] = []
        width = n_fields * dim
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        nn.init.normal_(self.emb.weight, std=1e-4)
        nn.init.normal_(self.first_order.weight, std=1e-4)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [batch, fields] (offsets already added) -> logits [batch]."""
        e = self.emb(ids)  # [batch, fields, dim]
        fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(1)
        linear = self.first_order(ids).sum((1, 2)) + self.bias
        return linear + fm + self.mlp(e.flatten(1)).squeeze(1)

    def l2_tables(self) -> torch.Tensor:
        return self.emb.weight.pow(2).sum() + self.first_order.weight.pow(2).sum()


def predict(model: BareDeepFM, ids: torch.Tensor, batch: int) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(ids[i:i + batch]) for i in range(0, len(ids), batch)])
    model.train()
    return torch.sigmoid(logits.double()).numpy()


def main() -> None:
    spec, out = parse_worker_args()
    if spec["model"] != "deepfm":
        raise SystemExit(f"the bare loop is DeepFM only, not {spec['model']}")
    set_threads(spec["threads"])
    seed_all(spec["seed"])
    data = load_encoded(Path(spec["data"]), spec.get("max_train_rows"))
    offsets = np.concatenate([[0], np.cumsum(data["sizes"])[:-1]]).astype(np.int64)
    tensors = {s: (torch.from_numpy(data[s][0] + offsets), torch.from_numpy(data[s][1])) for s in ("train", "valid",
                                                                                                  "test")}
    x_train, y_train = tensors["train"]
    n, batch = len(x_train), spec["batch_size"]
    model = BareDeepFM(int(sum(data["sizes"])), len(data["fields"]), spec["embedding_dim"], spec["mlp"],
                       spec["dropout"])
    optimizer = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    loss_fn = nn.BCEWithLogitsLoss()
    half_l2 = spec["embedding_l2"] / 2

    def train_epoch() -> None:
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            loss = loss_fn(model(x_train[idx]), y_train[idx]) + half_l2 * model.l2_tables()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    best: dict = {}

    def valid_auc() -> float:
        x, y = tensors["valid"]
        return auc_logloss(y.numpy(), predict(model, x, batch))[0]

    def save_best() -> None:
        best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    fit = train_with_plateau(spec, optimizer, train_epoch, valid_auc, save_best)
    model.load_state_dict(best["state"])
    t = time.perf_counter()
    x, y = tensors["test"]
    test_auc, test_logloss = auc_logloss(y.numpy(), predict(model, x, batch))
    test_s = time.perf_counter() - t
    write_result(out, {
        **fit, "test_auc": test_auc, "test_logloss": test_logloss, "test_seconds": test_s, "train_rows": n,
        "train_samples_per_s": n * fit["epochs"] / fit["train_seconds"],
        "preprocess_seconds": data["preprocess_seconds"],
        "params": sum(p.numel() for p in model.parameters()),
        "embedding_params": model.emb.weight.numel() + model.first_order.weight.numel(),
        "versions": {**base_versions(), "lib": "bare-torch"},
        "notes": "dense Adam over all parameters; L2 = l2/2 * (||E||^2 + ||W1||^2) every step; no clipping",
    })


if __name__ == "__main__":
    main()
