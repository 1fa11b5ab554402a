"""The prune-aware Optuna searcher: pruned trials are told PRUNED, and a resumed study whose Tune trial maps to an
Optuna trial that already finished gets a warning, not a crash."""

from __future__ import annotations

import logging

import optuna
from optuna.trial import TrialState

from clipstudy.study.protocol import PLANNED
from clipstudy.study.search import PruneAwareOptunaSearch


def make_searcher() -> PruneAwareOptunaSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return PruneAwareOptunaSearch(
        space=lambda trial: {"lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)},
        metric="val/acc",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


def test_a_pruned_trial_is_told_pruned_with_its_intermediate_values():
    search = make_searcher()
    search.suggest("a")
    for epoch, acc in ((1, 0.2), (2, 0.3)):
        search.on_trial_result("a", {"val/acc": acc, "epoch": epoch})
    search.on_trial_complete("a", {"val/acc": 0.3, "epoch": 2, PLANNED: 5})
    (trial,) = search._ot_study.get_trials()
    assert trial.state == TrialState.PRUNED and trial.intermediate_values == {1: 0.2, 2: 0.3}


def test_a_tune_trial_mapped_to_a_finished_optuna_trial_warns_instead_of_failing(caplog):
    search = make_searcher()
    search.suggest("a")
    search.on_trial_complete("a", {"val/acc": 0.5, "epoch": 3, PLANNED: 3})
    search._ot_trials["b"] = search._ot_trials["a"]  # what a resume after a kill left behind once
    with caplog.at_level(logging.WARNING, logger="clipstudy.study.search"):
        search.on_trial_result("b", {"val/acc": 0.6, "epoch": 1})
        search.on_trial_complete("b", {"val/acc": 0.6, "epoch": 1, PLANNED: 3})
    assert "its Optuna trial already finished" in caplog.text
    (trial,) = search._ot_study.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.value == 0.5
