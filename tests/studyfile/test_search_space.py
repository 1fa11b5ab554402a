import optuna
import pytest
from pydantic import ValidationError

from clipstudy.studyfile.search_space import Dist, grid, sample


def test_exactly_one_kind_and_ordered_bounds():
    assert Dist.model_validate({"loguniform": [1e-4, 1e-2]}).kind == "loguniform"
    assert Dist.model_validate({"int": [2, 8], "step": 2}).kind == "int"
    for bad, message in [
        ({}, "exactly one of"),
        ({"choice": [1], "uniform": [0, 1]}, "exactly one of"),
        ({"uniform": [1.0, 0.5]}, r"low \(1.0\) > high \(0.5\)"),
        ({"loguniform": [0, 1]}, "low must be > 0"),
        ({"choice": []}, "at least 1 item"),
        ({"choice": [1], "step": 2}, "step applies"),
        ({"chioce": [1]}, "Extra inputs"),
    ]:
        with pytest.raises(ValidationError, match=message):
            Dist.model_validate(bad)


def test_define_by_run_sampling_respects_bounds_conditions_and_list_choices():
    space = {
        "head.kind": Dist.model_validate({"choice": ["mlp", "text"]}),
        "head.hidden": Dist.model_validate({"int": [64, 256], "step": 64, "when": {"head.kind": "mlp"}}),
        "lora.targets": Dist.model_validate({"choice": [["q", "v"], ["q", "k", "v"]]}),
        "train.lr": Dist.model_validate({"loguniform": [1e-4, 1e-2]}),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_kinds = set()
    for _ in range(30):
        trial = study.ask()
        values = sample(space, trial, fixed={"head.kind": "linear"})
        seen_kinds.add(values["head.kind"])
        assert ("head.hidden" in values) == (values["head.kind"] == "mlp")
        if "head.hidden" in values:
            assert values["head.hidden"] in (64, 128, 192, 256)
        assert values["lora.targets"] in (["q", "v"], ["q", "k", "v"])
        assert 1e-4 <= values["train.lr"] <= 1e-2
        study.tell(trial, 0.0)
    assert seen_kinds == {"mlp", "text"}


def test_grid_needs_unconditional_choices():
    space = {
        "lora.r": Dist.model_validate({"choice": [4, 8]}),
        "lora.targets": Dist.model_validate({"choice": [["q"], ["v"]]}),
    }
    assert grid(space) == {"lora.r": [4, 8], "lora.targets": [0, 1]}
    with pytest.raises(ValueError, match=r"train\.lr"):
        grid({"train.lr": Dist.model_validate({"uniform": [0.1, 0.2]})})
