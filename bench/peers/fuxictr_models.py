"""FuxiCTR's DeepFM, DCNv2 and FM model classes, rewritten for the peer comparison (peers venv only).

The `fuxictr` 2.3.10 wheel ships `BaseModel`, the layers, the preprocessing and the data loaders, but not the
model zoo, where these three classes live (`model_zoo/{DeepFM/DeepFM_torch,DCNv2,FM}/src/*.py` of the FuxiCTR
repository). They are rewritten here to behave as those classes do: same library layers, same construction
order (so the same initialisation), the same forward pass, and `BaseModel` (its `fit`, loss, regularisation,
gradient clipping and early stopping) used untouched. References: DeepFM (Guo et al., IJCAI 2017), DCN-V2
(Wang et al., WWW 2021), FM (Rendle, ICDM 2010).
"""

from __future__ import annotations

import torch
from fuxictr.pytorch.layers import CrossNetMix, CrossNetV2, FactorizationMachine, FeatureEmbedding, MLP_Block
from fuxictr.pytorch.models import BaseModel
from torch import nn


class DeepFM(BaseModel):
    """First-order + FM term (FactorizationMachine) plus an MLP over the flattened field embeddings."""

    def __init__(self, feature_map, model_id="DeepFM", gpu=-1, learning_rate=1e-3, embedding_dim=10,  # noqa: ANN001
                 hidden_units=(64, 64, 64), hidden_activations="ReLU", net_dropout=0, batch_norm=False,
                 embedding_regularizer=None, net_regularizer=None, **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=embedding_regularizer,
                         net_regularizer=net_regularizer, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.fm = FactorizationMachine(feature_map)
        self.mlp = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1, hidden_units=list(hidden_units),
                             hidden_activations=hidden_activations, output_activation=None,
                             dropout_rates=net_dropout, batch_norm=batch_norm)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs):  # noqa: ANN001, ANN201
        x = self.get_inputs(inputs)
        emb = self.embedding_layer(x)  # [batch, fields, dim]
        logit = self.fm(x, emb) + self.mlp(emb.flatten(start_dim=1))
        return {"y_pred": self.output_activation(logit)}


class DCNv2(BaseModel):
    """CrossNetV2 (or its low-rank mixture) with an MLP beside it, after it, or both; one output Linear."""

    STRUCTURES = ("crossnet_only", "stacked", "parallel", "stacked_parallel")

    def __init__(self, feature_map, model_id="DCNv2", gpu=-1, model_structure="parallel",  # noqa: ANN001
                 use_low_rank_mixture=False, low_rank=32, num_experts=4, learning_rate=1e-3, embedding_dim=10,
                 stacked_dnn_hidden_units=(), parallel_dnn_hidden_units=(), dnn_activations="ReLU",
                 num_cross_layers=3, net_dropout=0, batch_norm=False, embedding_regularizer=None,
                 net_regularizer=None, **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=embedding_regularizer,
                         net_regularizer=net_regularizer, **kwargs)
        if model_structure not in self.STRUCTURES:
            raise ValueError(f"model_structure={model_structure!r}: expected one of {self.STRUCTURES}")
        self.model_structure = model_structure
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        width = feature_map.sum_emb_out_dim()
        if use_low_rank_mixture:
            self.crossnet = CrossNetMix(width, num_cross_layers, low_rank=low_rank, num_experts=num_experts)
        else:
            self.crossnet = CrossNetV2(width, num_cross_layers)
        stacked, parallel = list(stacked_dnn_hidden_units), list(parallel_dnn_hidden_units)
        if model_structure in ("stacked", "stacked_parallel"):
            self.stacked_dnn = MLP_Block(input_dim=width, output_dim=None, hidden_units=stacked,
                                         hidden_activations=dnn_activations, output_activation=None,
                                         dropout_rates=net_dropout, batch_norm=batch_norm)
            out_dim = stacked[-1]
        if model_structure in ("parallel", "stacked_parallel"):
            self.parallel_dnn = MLP_Block(input_dim=width, output_dim=None, hidden_units=parallel,
                                          hidden_activations=dnn_activations, output_activation=None,
                                          dropout_rates=net_dropout, batch_norm=batch_norm)
            out_dim = width + parallel[-1]
        if model_structure == "stacked_parallel":
            out_dim = stacked[-1] + parallel[-1]
        if model_structure == "crossnet_only":
            out_dim = width
        self.fc = nn.Linear(out_dim, 1)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs):  # noqa: ANN001, ANN201
        x = self.get_inputs(inputs)
        emb = self.embedding_layer(x, flatten_emb=True)  # [batch, fields * dim]
        cross = self.crossnet(emb)
        if self.model_structure == "crossnet_only":
            final = cross
        elif self.model_structure == "stacked":
            final = self.stacked_dnn(cross)
        elif self.model_structure == "parallel":
            final = torch.cat([cross, self.parallel_dnn(emb)], dim=-1)
        else:
            final = torch.cat([self.stacked_dnn(cross), self.parallel_dnn(emb)], dim=-1)
        return {"y_pred": self.output_activation(self.fc(final))}


class FM(BaseModel):
    """First-order weights + bias + pairwise FM term; FuxiCTR's FM takes one `regularizer` for all parameters."""

    def __init__(self, feature_map, model_id="FM", gpu=-1, learning_rate=1e-3, embedding_dim=10,  # noqa: ANN001
                 regularizer=None, **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=regularizer,
                         net_regularizer=regularizer, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.fm = FactorizationMachine(feature_map)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs):  # noqa: ANN001, ANN201
        x = self.get_inputs(inputs)
        logit = self.fm(x, self.embedding_layer(x))
        return {"y_pred": self.output_activation(logit)}


MODELS = {"deepfm": DeepFM, "dcnv2": DCNv2, "fm": FM}
