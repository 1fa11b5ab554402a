"""Study files -> validated trial configs: the study schema, search spaces, config resolution, diagnostics."""

from clipstudy.studyfile.schema import Arm, Resources, SchedulerSettings, SearchSettings, Study, load_study

__all__ = ["Arm", "Resources", "SchedulerSettings", "SearchSettings", "Study", "load_study"]
