"""Classification heads: the MLP head's two dropouts."""

from __future__ import annotations

from torch import nn

from clipstudy.engine import Trainer
from clipstudy.models.heads import MLPHead


def dropouts(head: MLPHead) -> list[float]:
    return [m.p for m in head.net if isinstance(m, nn.Dropout)]


def test_mlp_head_hidden_dropout_defaults_to_the_input_dropout():
    assert dropouts(MLPHead(8, 3, hidden=4, dropout=0.2)) == [0.2, 0.2]
    assert dropouts(MLPHead(8, 3, hidden=4, dropout=0.2, hidden_dropout=0.5)) == [0.2, 0.5]
    assert dropouts(MLPHead(8, 3, hidden=4, dropout=0.2, hidden_dropout=0.0)) == [0.2, 0.0]


def test_mlp_head_layers_are_dropout_linear_relu_dropout_linear():
    kinds = [type(m) for m in MLPHead(8, 3, hidden=4, dropout=0.1, hidden_dropout=0.3).net]
    assert kinds == [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]


def test_head_config_reaches_the_built_mlp_head(tiny_config):
    cfg = tiny_config("linear_probe", head__kind="mlp", head__dropout=0.1, head__hidden_dropout=0.4)
    assert dropouts(Trainer(cfg).model.head) == [0.1, 0.4]
