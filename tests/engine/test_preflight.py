"""Before a local study starts its trials, their weights and data are checked here, once, with the trial's errors."""

from __future__ import annotations

import pytest

from clipstudy.engine import preflight
from clipstudy.errors import DataError, ModelError


def test_a_missing_data_root_names_the_arm_and_the_field(tiny_config, tmp_path):
    cfg = tiny_config("linear_probe", data__name="imagefolder", data__root=str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"^arm 'probe': imagefolder: data\.root .*nope is not a folder"):
        preflight.check_inputs([("probe", cfg)])


def test_a_missing_weights_file_names_the_arm(tiny_config, tmp_path):
    cfg = tiny_config("zero_shot", model__pretrained=str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelError, match=r"^arm 'zs': model\.pretrained: no such checkpoint file"):
        preflight.check_inputs([("zs", cfg)])


def test_a_missing_retention_dataset_is_found_too(tiny_config, tmp_path):
    cfg = tiny_config("lora", data__root=str(tmp_path / "nope"), eval__retention=["imagefolder"])
    with pytest.raises(DataError, match=r"^arm 'lora': imagefolder: data\.root"):
        preflight.check_inputs([("lora", cfg)])


def test_each_model_is_built_once_and_each_dataset_opened_once(tiny_config, monkeypatch):
    built, opened = [], []
    build_model = preflight.build_model
    monkeypatch.setattr(preflight, "build_model", lambda cfg: built.append(cfg.arch) or build_model(cfg))
    monkeypatch.setattr(preflight, "check_available", lambda cfg, size: opened.append((cfg.name, size)))
    micro = {"model__arch": "clipstudy-micro", "model__pretrained": "synthetic", "data__name": "digits"}
    preflight.check_inputs(
        [
            ("zs", tiny_config("zero_shot", **micro)),
            ("lora", tiny_config("lora", **micro, eval__retention=["shapes"])),
            ("tiny", tiny_config("linear_probe")),
        ]
    )
    assert built == ["clipstudy-micro", "clipstudy-tiny"]  # the micro arms share theirs
    assert opened == [("digits", 32), ("shapes", 32), ("synthetic", 32)]  # at each model's input size


def test_builtin_datasets_are_not_opened(tiny_config, monkeypatch):
    from clipstudy.data import base

    monkeypatch.setattr(base, "_open", lambda cfg, size: pytest.fail(f"opened {cfg.name}"))
    preflight.check_inputs([("a", tiny_config("linear_probe", eval__retention=["digits", "shapes"]))])
