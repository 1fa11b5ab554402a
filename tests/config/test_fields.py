"""Shared field types: unique lists, and registry names checked only by whoever passes the checks."""

from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError

from clipstudy.config import NAME_CHECKS
from clipstudy.config.fields import Unique, registered


class Named(BaseModel):
    method: Annotated[str, registered("method")] = "a"
    datasets: Annotated[list[str], Unique, registered("dataset")] = []


def only(*names: str):
    def check(name: str) -> None:
        if name not in names:
            raise ValueError(f"unknown name '{name}'")

    return check


CONTEXT = {NAME_CHECKS: {"method": only("a", "b"), "dataset": only("x", "y")}}


def test_without_checks_a_name_is_any_string():
    assert Named.model_validate({"method": "zzz", "datasets": ["q"]}).method == "zzz"


def test_the_checks_in_the_context_refuse_unknown_names_at_their_field():
    assert Named.model_validate({"method": "b", "datasets": ["x", "y"]}, context=CONTEXT).datasets == ["x", "y"]
    with pytest.raises(ValidationError) as error:
        Named.model_validate({"method": "c", "datasets": ["x", "w"]}, context=CONTEXT)
    found = {(".".join(map(str, e["loc"])), e["msg"]) for e in error.value.errors()}
    assert found == {("method", "Value error, unknown name 'c'"), ("datasets", "Value error, unknown name 'w'")}


def test_a_kind_without_a_check_is_not_checked():
    assert Named.model_validate({"method": "c"}, context={NAME_CHECKS: {"dataset": only()}}).method == "c"


def test_unique_refuses_repeats_before_names_are_checked():
    with pytest.raises(ValidationError, match="entries must be unique"):
        Named.model_validate({"datasets": ["w", "w"]}, context=CONTEXT)
