"""The single training/evaluation engine shared by every method."""

from clipstudy.engine.metrics import Evaluation, confusion_frame, evaluate_predictions
from clipstudy.engine.trainer import Callback, Trainer, TrialResult, run_trial

__all__ = ["Callback", "Evaluation", "Trainer", "TrialResult", "confusion_frame", "evaluate_predictions", "run_trial"]
