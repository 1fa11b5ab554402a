"""The search of one arm: Optuna's sampler behind Ray Tune, told the truth about pruned trials, and ASHA."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from clipstudy.study.protocol import was_pruned
from clipstudy.studyfile import Arm, Study
from clipstudy.studyfile.search_space import Dist, grid, sample

OPTUNA_DB = "optuna.db"
log = logging.getLogger(__name__)


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth about early-stopped trials.

    Ray's OptunaSearch records a trial stopped by ASHA as COMPLETE with its low-fidelity value,
    which misleads TPE and "best trial". Here intermediate values are reported per epoch
    (step = epoch) and such trials are told PRUNED.
    """

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or self.metric not in result:
            return
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self._ot_trials[trial_id].report(result[self.metric], int(result["epoch"]))
        except UpdateFinishedTrialError as error:
            self._stale(trial_id, error)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if not error and was_pruned(result) and trial_id not in self._completed_trials:
            from optuna.exceptions import UpdateFinishedTrialError
            from optuna.trial import TrialState

            try:
                self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
            except (UpdateFinishedTrialError, ValueError) as stale:  # tell() of a finished trial: ValueError
                self._stale(trial_id, stale)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result, error)

    def _stale(self, trial_id: str, error: Exception) -> None:
        """A study resumed after a kill can hold a Tune trial whose Optuna trial already finished (the searcher's
        checkpoint and Tune's trial list were written at different moments; seen once in CI). Optuna then
        refuses the value: the sampler loses that one observation, the trial itself still runs and is recorded
        in MLflow. Warn instead of failing the whole resumed study."""
        log.warning(
            "trial %s: its Optuna trial already finished, its results are not told to Optuna (%s)", trial_id, error
        )

    def restore(self, checkpoint_path: str) -> None:
        """Restore, then fail the Optuna trials asked after the checkpoint: no Tune trial will report them."""
        super().restore(checkpoint_path)
        from optuna.trial import TrialState

        known = {trial.number for trial in self._ot_trials.values()}
        for trial in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number not in known:
                self._ot_study.tell(trial.number, state=TrialState.FAIL)


@dataclass
class ArmSpace:
    """The define-by-run space of one arm (a class, not a lambda: Tune pickles the searcher)."""

    space: dict[str, Dist]
    fixed: dict[str, Any]

    def __call__(self, trial: Any) -> dict[str, Any]:
        return sample(self.space, trial, self.fixed)


def searcher(study: Study, arm: Arm, storage_url: str, run_tag: str) -> Any:
    """Optuna (define-by-run over the arm's space), or Tune's generator for arms with nothing to search."""
    if not arm.search:
        return BasicVariantGenerator()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = study.fixed_values(arm)
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=study.search.seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=study.search.seed),
        "grid": lambda: optuna.samplers.GridSampler(grid(arm.search), seed=study.search.seed),
    }
    return PruneAwareOptunaSearch(
        space=ArmSpace(arm.search, fixed),
        metric=study.metric,
        mode=study.mode,
        sampler=samplers[study.search.algorithm](),
        study_name=f"{study.name}.{arm.name}.{run_tag}",
        storage=optuna.storages.RDBStorage(storage_url),
    )


def num_samples(study: Study, arm: Arm) -> int:
    if study.search.algorithm == "grid" and arm.search:
        return arm.trials * math.prod(len(v) for v in grid(arm.search).values())
    return arm.trials


def scheduler(study: Study, epochs: int) -> Any:
    if study.scheduler.kind == "fifo" or epochs < 2:
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        metric=study.metric,
        mode=study.mode,
        max_t=epochs,
        grace_period=min(study.scheduler.grace_period, epochs),
        reduction_factor=study.scheduler.reduction_factor,
    )
