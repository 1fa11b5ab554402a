"""Study files -> validated trial configs: the study schema, config resolution, search spaces, diagnostics.

- `schema`: the study file's models (`Study`, `Arm`, `Resources`, ...);
- `load`: `load_study`, every problem of a file at once, and warnings for keys set in vain;
- `resolve`: config layers -> one `TrialConfig` (registry names checked, method defaults filled in);
- `names`: the registry-name checks; `unread`: keys a method never reads;
- `search_space`: search-space entries; `diagnostics`: naming the structural errors of a file.
"""

from clipstudy.studyfile.load import load_study
from clipstudy.studyfile.resolve import build_config, override_layers, resolve_config
from clipstudy.studyfile.schema import Arm, Resources, SchedulerSettings, SearchSettings, Study
from clipstudy.studyfile.unread import warn_unread_overrides

__all__ = [
    "Arm",
    "Resources",
    "SchedulerSettings",
    "SearchSettings",
    "Study",
    "build_config",
    "load_study",
    "override_layers",
    "resolve_config",
    "warn_unread_overrides",
]
