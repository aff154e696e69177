"""DeepCTR-Torch 0.3.0 worker of the peer comparison (runs in the peers venv).

DeepFM: `DeepFM(dnn_hidden_units=mlp, dnn_dropout, dnn_use_bn=False)`. FM: DeepCTR-Torch has no FM model,
so it is its `DeepFM` with `dnn_hidden_units=()` (linear + FM, no DNN). DCNv2: `DCN(cross_num,
cross_parameterization='matrix')`, DCN-M, whose deep and cross outputs are concatenated (parallel, as
FuxiCTR's default DCNv2); DeepCTR-Torch adds its linear (first-order) logit as well.

Embedding L2: DeepCTR-Torch sums the BCE over the batch and adds `l2 * sum(w^2)`, so FuxiCTR's mean BCE +
`embedding_l2/2 * ||W||^2` maps to `l2 = embedding_l2/2 * batch_size` on the embedding and linear tables
(same objective up to scale, which Adam ignores, apart from the last partial batch). All other
regularisers are 0. `fit(epochs=1, verbose=0)` is called once per epoch by the shared outer loop that applies
FuxiCTR's plateau rule. Library defaults otherwise (DNN init normal(0, 1e-4), no gradient clipping).

    python bench/peers/run_deepctr.py --spec '{...}' --out result.json
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

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


def build(spec: dict, columns: list, l2: float):  # noqa: ANN201
    from deepctr_torch.models import DCN, DeepFM

    common = dict(l2_reg_embedding=l2, l2_reg_linear=l2, l2_reg_dnn=0, seed=spec["seed"], task="binary",
                  device="cpu")
    if spec["model"] == "deepfm":
        return DeepFM(columns, columns, dnn_hidden_units=tuple(spec["mlp"]), dnn_dropout=spec["dropout"],
                      dnn_use_bn=False, dnn_activation="relu", **common)
    if spec["model"] == "fm":
        return DeepFM(columns, columns, dnn_hidden_units=(), **common)
    if spec["model"] == "dcnv2":
        # DCN passes its l2_reg_linear to its output layer, not to its linear (first-order) part, which keeps
        # BaseModel's 1e-5: give that table the same L2 as the embeddings, and the output layer none.
        common["l2_reg_linear"] = 0
        model = DCN(columns, columns, cross_num=spec["cross_layers"], cross_parameterization="matrix",
                    dnn_hidden_units=tuple(spec["mlp"]), dnn_dropout=spec["dropout"], dnn_use_bn=False,
                    dnn_activation="relu", l2_reg_cross=0, **common)
        linear_ids = [id(p) for p in model.linear_model.parameters()]
        for i, (weights, l1, _) in enumerate(model.regularization_weight):
            if [id(w) for w in weights] == linear_ids:
                model.regularization_weight[i] = (weights, l1, l2)
        return model
    raise SystemExit(f"unknown model {spec['model']}")


def main() -> None:
    spec, out = parse_worker_args()
    set_threads(spec["threads"])
    seed_all(spec["seed"])
    import deepctr_torch
    import torch
    from deepctr_torch.inputs import SparseFeat

    data = load_encoded(Path(spec["data"]), spec.get("max_train_rows"))
    fields = data["fields"]
    columns = [SparseFeat(f, vocabulary_size=size, embedding_dim=spec["embedding_dim"])
               for f, size in zip(fields, data["sizes"], strict=True)]
    xs = {s: {f: data[s][0][:, i] for i, f in enumerate(fields)} for s in ("train", "valid", "test")}
    ys = {s: data[s][1] for s in ("train", "valid", "test")}
    batch = spec["batch_size"]
    l2 = spec["embedding_l2"] / 2 * batch
    model = build(spec, columns, l2)
    model.compile(torch.optim.Adam(model.parameters(), lr=spec["lr"]), "binary_crossentropy", metrics=["auc"])
    n = len(ys["train"])
    best: dict = {}

    def train_epoch() -> None:
        model.fit(xs["train"], ys["train"], batch_size=batch, epochs=1, verbose=0, shuffle=True)

    def valid_auc() -> float:
        return auc_logloss(ys["valid"], model.predict(xs["valid"], batch_size=batch))[0]

    def save_best() -> None:
        best["state"] = copy.deepcopy(model.state_dict())

    fit = train_with_plateau(spec, model.optim, train_epoch, valid_auc, save_best)
    model.load_state_dict(best["state"])
    t = time.perf_counter()
    test_auc, test_logloss = auc_logloss(ys["test"], model.predict(xs["test"], batch_size=batch))
    test_s = time.perf_counter() - t
    emb = sum(p.numel() for name, p in model.named_parameters() if "embedding_dict" in name)
    write_result(out, {
        **fit, "test_auc": test_auc, "test_logloss": test_logloss, "test_seconds": test_s, "train_rows": n,
        "train_samples_per_s": n * fit["epochs"] / fit["train_seconds"],
        "preprocess_seconds": data["preprocess_seconds"],
        "params": sum(p.numel() for p in model.parameters()), "embedding_params": emb,
        "versions": {**base_versions(), "lib": "deepctr-torch", "deepctr_torch": deepctr_torch.__version__},
        "notes": f"l2_reg_embedding = l2_reg_linear = {l2:g} (sum-reduced BCE); verbose=0; no clipping",
        "reg_terms": [[len(ws), l1_, l2_] for ws, l1_, l2_ in model.regularization_weight],
    })


if __name__ == "__main__":
    main()
