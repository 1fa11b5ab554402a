import numpy as np
import pytest
import torch

from clipstudy.engine.metrics import evaluate_predictions


def test_metrics_match_a_hand_computation():
    logits = torch.tensor([[3.0, 2, 1], [3, 2, 1], [1, 3, 2], [1, 2, 3], [2, 1, 3], [3, 1, 2]])
    labels = torch.tensor([0, 1, 1, 2, 0, 2])
    evaluation = evaluate_predictions(logits, labels, ["a", "b", "c"])
    # predictions: 0, 0, 1, 2, 2, 0
    assert evaluation.metrics["test/acc"] == pytest.approx(3 / 6)
    assert evaluation.metrics["test/acc5"] == 1.0
    np.testing.assert_array_equal(evaluation.confusion, [[1, 0, 1], [1, 1, 0], [1, 0, 1]])
    row = evaluation.per_class.set_index("class").loc["a"]
    assert (row.precision, row.recall, row.support) == (pytest.approx(1 / 3), 0.5, 2)
    f1 = [2 * (1 / 3 * 0.5) / (1 / 3 + 0.5), 2 * (1 * 0.5) / 1.5, 2 * (0.5 * 0.5) / 1.0]
    assert evaluation.metrics["test/macro_f1"] == pytest.approx(np.mean(f1))
