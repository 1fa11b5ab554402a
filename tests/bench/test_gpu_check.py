"""bench/gpu_check.py in smoke mode (tiny model, CPU): every section runs and the report holds real figures,
so the GPU check cannot rot between the rare sessions that have a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_the_smoke_run_measures_every_case_and_writes_both_reports(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] is True and report["machine"]["gpu"] is None and not report["skipped"]
    rows = report["training"] + report["features"]
    errors = [r for r in rows if "error" in r]
    assert not errors, errors
    cases = {r["case"] for r in report["training"]}
    assert cases == {"lora", "lora_both_towers_text_head", "full_ft_seed000_augment", "linear_probe_feature_extraction"}
    assert {r["case"] for r in report["features"]} == {
        "lora_attention_math",
        "full_ft_unfused_adamw",
        "lora_streamed_prefetch",
        "lora_streamed_no_prefetch",
    }
    for row in rows:
        assert row["img_s"] > 0 and row["gflop_per_image"] > 0 and 0 <= row["augment_share"] < 1, row
    by_case = {r["case"]: r for r in rows}
    assert by_case["full_ft_seed000_augment"]["trainable_params"] > by_case["lora"]["trainable_params"] > 0
    assert by_case["full_ft_seed000_augment"]["augment_share"] > 0  # the seed-000 ops and Mixup/CutMix ran
    fixed = {r["case"]: r for r in report["fixed_cost"]}
    assert set(fixed) == {"lora", "lora_both_towers_text_head", "full_ft_seed000_augment"}
    for name, row in fixed.items():
        assert row["small_batch"] == 2 and row["batch"] == 16 and row["step_ms"] == by_case[name]["step_ms"]
        assert row["small_batch_step_ms"] > 0 and row["fixed_share"] == row["small_batch_step_ms"] / row["step_ms"]
    assert "## Per-step cost that does not grow with the batch" in (tmp_path / "gpu_check.md").read_text()
    sharing = report["sharing"]
    assert sharing["alone_img_s"] > 0 and len(sharing["pair_img_s"]) == 2 and sharing["total_over_alone"] > 0
    text = (tmp_path / "gpu_check.md").read_text()
    assert "| LoRA training, ViT-B/32 | >= 8,000 img/s | - | - |" in text  # no ViT-B/32 in smoke mode
    assert "| clipstudy-tiny | lora |" in text
