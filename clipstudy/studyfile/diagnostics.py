"""Every problem of a file validated by a pydantic model, even when its structure is broken.

Pydantic stops at the structure: a file with an unknown key says nothing of the values below it. These
helpers name each structural error by its field path (with a did-you-mean for unknown keys), and
`salvage` drops what the errors point at so the rest of the file can still be checked.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from clipstudy.errors import Problem, did_you_mean

Model = TypeVar("Model", bound=BaseModel)


def validation_message(item: Mapping[str, Any]) -> str:
    """Pydantic's message without its 'Value error, ' prefix (the message is the user's, not Python's)."""
    return str(item["msg"]).removeprefix("Value error, ")


def dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def structure_problem(
    model: type[BaseModel], item: Mapping[str, Any], raw: dict[str, Any], where: str, named: Mapping[str, str]
) -> Problem:
    """One pydantic error of the file `where` at its field path, list entries of `named` lists named by their key."""
    loc = tuple(item["loc"])
    path = field_path(loc, raw, named)
    if item["type"] == "extra_forbidden":
        fields = field_names(model, loc[:-1])
        hint = did_you_mean(str(loc[-1]), fields)
        return Problem(f"unknown key{hint}; valid: {', '.join(fields)}", path, where)
    return Problem(validation_message(item), path or "(top level)", where)


def field_path(loc: tuple[Any, ...], raw: dict[str, Any], named: Mapping[str, str]) -> str:
    """('arms', 0, 'search', 'train.lr') -> 'arms[0] (lora).search.train.lr' (with named={'arms': 'name'})."""
    if len(loc) >= 2 and loc[0] in named and isinstance(loc[1], int):
        entries = raw.get(loc[0])
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        label = entry.get(named[loc[0]]) if isinstance(entry, dict) else None
        rest = dotted(loc[2:])
        return f"{loc[0]}[{loc[1]}]" + (f" ({label})" if isinstance(label, str) else "") + (f".{rest}" if rest else "")
    return dotted(loc)


def field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the model found at `loc` accepts (aliases where fields have them); [] where none is a model."""
    node: Any = model
    for part in (*loc, None):
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = {field.alias or name: field for name, field in node.model_fields.items()}
            if part is None:
                return list(fields)
            if part not in fields:
                return []
            node = fields[part].annotation
        elif get_origin(node) in (list, dict) and part is not None:
            node = get_args(node)[-1]
        else:
            return []
    return []


def _unwrap(annotation: Any) -> Any:
    """Annotated[X, ...] and X | None -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        else:
            return annotation


def salvage(
    model: type[Model],
    raw: dict[str, Any],
    error: ValidationError,
    required: tuple[str, ...],
    named: Mapping[str, str],
    rounds: int = 20,
) -> Model | None:
    """The model of `raw` less the parts its errors point at, so the rest can still be checked; None if it cannot.

    An unknown key or a bad value is dropped (a default takes its place); entries of `named` lists never are
    (the others would be renumbered), and neither are the `required` top-level keys.
    """
    tree = copy.deepcopy(raw)
    for _ in range(rounds):
        if not all(_drop(tree, tuple(item["loc"]), required, named) for item in error.errors()):
            return None
        try:
            return model.model_validate(tree)
        except ValidationError as again:
            error = again
    return None


def _drop(tree: dict[str, Any], loc: tuple[Any, ...], required: tuple[str, ...], named: Mapping[str, str]) -> bool:
    """Delete the innermost mapping entry on `loc` that may go; False when there is none."""
    shortest = 3 if loc[:1] and loc[0] in named else 1
    for end in range(len(loc), shortest - 1, -1):
        *parents, last = loc[:end]
        node: Any = tree
        for part in parents:
            inside = isinstance(node, dict) and part in node
            indexed = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if not (inside or indexed):
                break
            node = node[part]
        else:
            if isinstance(node, dict) and last in node and not (node is tree and last in required):
                del node[last]
                return True
    return False
