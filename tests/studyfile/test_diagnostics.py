"""Structural errors of a pydantic-validated file: named by field path, and the valid rest salvaged."""

import pytest
from pydantic import ValidationError

from clipstudy.studyfile.diagnostics import field_names, field_path, salvage, structure_problem
from clipstudy.studyfile.schema import NAMED_LISTS, REQUIRED, Study


def errors_of(raw: dict) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Study.model_validate(raw)
    return caught.value


def test_field_names_follow_lists_dicts_and_optionals():
    assert field_names(Study, ("arms", 0)) == ["name", "method", "config", "search", "trials", "resources"]
    assert field_names(Study, ("arms", 0, "resources")) == ["cpus", "gpus", "workers", "in_process"]
    assert "int" in field_names(Study, ("arms", 0, "search", "train.lr"))  # the alias, not `int_`
    assert field_names(Study, ("arms", 0, "config")) == []  # free-form: checked by the config layer


def test_field_path_names_list_entries():
    raw = {"arms": [{"name": "lora"}, "oops"]}
    assert field_path(("arms", 0, "search", "train.lr"), raw, NAMED_LISTS) == "arms[0] (lora).search.train.lr"
    assert field_path(("arms", 1), raw, NAMED_LISTS) == "arms[1]"
    assert field_path(("resources", "cpus"), raw, NAMED_LISTS) == "resources.cpus"


def test_salvage_drops_what_the_errors_point_at_and_keeps_the_rest():
    raw = {
        "name": "s",
        "resources": {"cpus": -1, "gpu": 1},
        "arms": [
            {"name": "a", "method": "lora", "trails": 2, "search": {"train.lr": {"uniform": [0, "x"]}, "lora.r": {}}},
            {"name": "b", "method": "full_ft", "config": {"train.lr": 0.1}},
        ],
    }
    study = salvage(Study, raw, errors_of(raw), REQUIRED, NAMED_LISTS)
    assert [arm.name for arm in study.arms] == ["a", "b"]
    assert study.arms[0].search == {} and study.arms[0].trials == 1
    assert study.arms[1].config == {"train.lr": 0.1}
    assert study.resources.cpus == 1.0
    assert raw["resources"] == {"cpus": -1, "gpu": 1}, "the file's own data is left as it was"


@pytest.mark.parametrize(
    "raw",
    [{"arms": [{"name": "a", "method": "lora"}]}, {"name": "s", "arms": ["lora"]}, {"name": "s", "arms": []}],
    ids=["no name", "an arm that is no mapping", "no arms"],
)
def test_salvage_gives_up_where_dropping_would_change_the_study(raw):
    assert salvage(Study, raw, errors_of(raw), REQUIRED, NAMED_LISTS) is None


def test_structure_problems_hold_the_file_the_field_and_the_message():
    raw = {"name": "s", "arms": [{"name": "a", "method": "lora", "trails": 2}], "metric": "val/f1"}
    problems = sorted(
        (structure_problem(Study, item, raw, "s.yaml", NAMED_LISTS) for item in errors_of(raw).errors()),
        key=lambda p: p.path,
    )
    assert [(p.layer, p.path) for p in problems] == [("s.yaml", "arms[0] (a).trails"), ("s.yaml", "metric")]
    assert problems[0].message.startswith("unknown key (did you mean 'trials'?); valid: name, method, config")
    assert str(problems[1]) == "s.yaml: metric: Input should be 'val/acc', 'val/loss', 'train/acc' or 'train/loss'"
