from __future__ import annotations

import itertools

import torch

from recnas.nn.interactions import (
    CIN,
    BiInteraction,
    CrossNet,
    CrossNetV2,
    FFMInteraction,
    FMInteraction,
    FwFMInteraction,
    InnerProduct,
)


def test_fm_identity_equals_the_sum_over_pairs() -> None:
    e = torch.randn(5, 6, 4)
    explicit = sum((e[:, i] * e[:, j]).sum(-1) for i, j in itertools.combinations(range(6), 2))
    torch.testing.assert_close(FMInteraction()(e).squeeze(1), explicit)
    torch.testing.assert_close(BiInteraction()(e).sum(1), explicit)


def test_inner_product_and_fwfm_match_loops() -> None:
    e = torch.randn(3, 5, 4)
    pairs = list(itertools.combinations(range(5), 2))
    ip = InnerProduct(5)(e)
    assert ip.shape == (3, len(pairs))
    for k, (i, j) in enumerate(pairs):
        torch.testing.assert_close(ip[:, k], (e[:, i] * e[:, j]).sum(-1))
    fw = FwFMInteraction(5)
    r = fw.pair_weight.weight.squeeze(0)
    explicit = sum(r[k] * (e[:, i] * e[:, j]).sum(-1) for k, (i, j) in enumerate(pairs))
    torch.testing.assert_close(fw(e).squeeze(1), explicit)


def test_ffm_uses_the_field_aware_vectors() -> None:
    e = torch.randn(2, 4, 4, 3)  # [B, field, other field, D]
    explicit = sum((e[:, i, j] * e[:, j, i]).sum(-1) for i, j in itertools.combinations(range(4), 2))
    torch.testing.assert_close(FFMInteraction(4)(e).squeeze(1), explicit)


def test_cross_layers_follow_their_formulas() -> None:
    x0 = torch.randn(3, 6)
    net = CrossNetV2(6, 1)
    layer = net.layers[0]
    torch.testing.assert_close(net(x0), x0 * layer(x0) + x0)
    dcn = CrossNet(6, 1)
    torch.testing.assert_close(dcn(x0), x0 * (x0 @ dcn.w[0]).unsqueeze(1) + dcn.b[0] + x0)


def test_cin_first_layer_matches_the_definition() -> None:
    torch.manual_seed(0)
    x0 = torch.randn(2, 3, 4)  # [B, m, D]
    for activation in ("identity", "relu"):
        cin = CIN(3, [5], activation)
        w, b = cin.layers[0].weight, cin.layers[0].bias  # [H, m*m]
        z = torch.einsum("bhd,bmd->bhmd", x0, x0).reshape(2, 9, 4)  # Z[h, m] = x_h * x_m per dimension
        maps = torch.einsum("oc,bcd->bod", w, z) + b[None, :, None]
        if activation == "relu":
            maps = torch.relu(maps)
        torch.testing.assert_close(cin(x0), maps.sum(-1))
