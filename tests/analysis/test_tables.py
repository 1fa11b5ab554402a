import math

import numpy as np
import pandas as pd
import pytest

from clipstudy.analysis import arm_table, class_extremes, confused_pairs, load_record, seed_repeats, trial_compute
from clipstudy.analysis.tables import pareto_front, protocol_table
from clipstudy.errors import ClipstudyError
from clipstudy.tracking.schema import ARM_COLUMN, STATUS_COLUMN
from tests.analysis.conftest import CLASSES, confusion_array, per_class_frame


@pytest.fixture(scope="module")
def record(shared_store):
    uri, _, _ = shared_store
    return load_record("fixture_study", uri)


def test_each_arm_is_represented_by_its_val_best_trial_never_the_test_best(record, shared_store):
    _, ids, _ = shared_store
    table = arm_table(record).set_index("arm")
    assert table.loc["probe", "run_id"] == ids["probe/0"]  # val 0.70 beats val 0.60 (whose test is 0.80)
    assert table.loc["probe", "test_acc"] == pytest.approx(0.65)
    assert table.loc["probe", "best_val_acc"] == pytest.approx(0.70)
    assert table.loc["lora", "run_id"] == ids["lora/3"]
    assert table.loc["lora", "test_acc5"] == pytest.approx(0.99)
    assert table.loc["zs", "method"] == "zero_shot"


def test_arms_are_listed_in_the_order_the_study_ran_them(record):
    assert list(arm_table(record).arm) == ["probe", "lora", "zs"]  # the study's order, not the alphabet's


def test_epoch_one_costs_and_parameter_share_come_from_the_best_trial(record):
    table = arm_table(record).set_index("arm")
    probe, lora, zs = table.loc["probe"], table.loc["lora"], table.loc["zs"]
    assert (probe.epoch1_train_acc, probe.epoch1_val_acc) == (pytest.approx(0.6), pytest.approx(0.5))
    assert (lora.epoch1_train_acc, lora.epoch1_val_acc) == (pytest.approx(0.7), pytest.approx(0.6))
    assert probe.trainable_pct == pytest.approx(100 * 650 / 100_650)
    assert probe.epoch_time_s == pytest.approx(10.0)
    assert probe.throughput_img_s == pytest.approx(250.0)  # epochs 1-2; epoch 0 only evaluates
    assert lora.throughput_img_s == pytest.approx(300.0)
    assert lora.peak_mem_mb == pytest.approx(503.0)
    assert lora.runs_on == "cuda (NVIDIA H100 80GB HBM3), bf16"
    assert zs.runs_on == "n/a"  # an older record, without runtime tags
    assert zs.trainable_params == 0 and math.isnan(zs.epoch1_val_acc) and math.isnan(zs.test_acc5)


def test_compute_counts_every_trial_times_the_devices_it_held(record):
    table = arm_table(record).set_index("arm")
    assert table.loc["probe", "compute_h"] == pytest.approx((3600 + 1800 + 900) * 2 / 3600)  # 2 CPUs each
    assert table.loc["probe", "compute_unit"] == "CPU-h"
    # 0.5 GPU x 2 workers; the run that never ended counts its logged epochs (2 x 30 s)
    assert table.loc["lora", "compute_h"] == pytest.approx((7200 + 360 + 60) / 3600)
    assert table.loc["lora", "compute_unit"] == "GPU-h"
    assert table.loc["zs", "compute_h"] == pytest.approx(36 / 3600)
    assert table.loc["zs", "compute_unit"] == "device-h"  # no resource tags recorded
    assert len(trial_compute(record)) == 7


def test_counts_per_arm(record):
    table = arm_table(record).set_index("arm")
    assert table.loc["probe", ["completed", "pruned", "failed"]].tolist() == [2, 1, 0]
    assert table.loc["lora", ["completed", "pruned", "failed"]].tolist() == [1, 0, 1]
    assert table.loc["zs", ["completed", "pruned", "failed"]].tolist() == [1, 0, 0]


def test_class_extremes_and_confused_pairs_match_hand_values():
    best, worst = class_extremes(per_class_frame(), n=10)
    assert best["class"].tolist() == CLASSES[:10]
    assert worst["class"].tolist() == CLASSES[::-1][:10]
    confusion = pd.DataFrame(confusion_array(), index=CLASSES, columns=CLASSES)
    pairs = confused_pairs(confusion, n=10)
    assert pairs[["true", "predicted", "count"]].values.tolist() == [
        ["c03", "c05", 4],
        ["c07", "c01", 3],
        ["c05", "c03", 2],
        ["c00", "c11", 1],
    ]
    assert pairs.share_of_true.iloc[0] == pytest.approx(4 / 19)


def test_pareto_front_keeps_points_nothing_beats():
    params = pd.Series([1, 100, 1000, 500])
    accuracy = pd.Series([0.3, 0.8, 0.9, 0.7])
    assert pareto_front(params, accuracy).tolist() == [True, True, True, False]


def test_seed_repeats_average_trials_that_differ_only_in_seed():
    trials = pd.DataFrame(
        {
            ARM_COLUMN: ["a"] * 5,
            STATUS_COLUMN: ["completed"] * 4 + ["pruned"],
            "params.data.shots": ["1", "1", "4", "4", "4"],
            "params.train.seed": ["0", "1", "0", "1", "2"],
            "metrics.test/acc": [0.2, 0.4, 0.6, 0.7, 0.1],
        }
    )
    repeats = seed_repeats(trials)
    assert repeats.config.tolist() == ["data.shots=1", "data.shots=4"]
    assert repeats["mean"].tolist() == pytest.approx([0.3, 0.65])
    assert repeats["std"].tolist() == pytest.approx([np.std([0.2, 0.4], ddof=1), np.std([0.6, 0.7], ddof=1)])
    assert seed_repeats(trials.drop(columns="params.train.seed")).empty


def test_unknown_study_lists_the_known_ones(shared_store):
    uri, _, _ = shared_store
    with pytest.raises(ClipstudyError, match=r"no study 'fixture_stdy'.*did you mean 'fixture_study'.*known studies"):
        load_record("fixture_stdy", uri)


def test_unknown_invocation_lists_the_study_runs(shared_store):
    uri, ids, _ = shared_store
    with pytest.raises(ClipstudyError, match=ids["parent"]):
        load_record("fixture_study", uri, invocation="0123")


def test_protocol_metrics_of_each_best_trial(record):
    table = protocol_table(record, arm_table(record)).set_index("arm")
    assert list(table.columns) == ["retention/digits/delta", "test/hm"]
    assert table.loc["lora", "test/hm"] == pytest.approx(0.72)
    assert table.loc["lora", "retention/digits/delta"] == pytest.approx(-0.05)
    assert math.isnan(table.loc["probe", "test/hm"])
