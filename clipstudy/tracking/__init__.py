"""The MLflow record of a study (DESIGN.md, "MLflow record"); the only package that imports MLflow.

One experiment per study, one parent run per invocation, one child run per trial. Every function takes the
tracking URI and explicit run ids and talks to MLflow through `MlflowClient`, never through the global active
run, so the driver and the Ray workers (other processes, other working directories) can all write to the same
store. The modules, lowest first:

- `schema`: the names in the record (tags, statuses, artifact files, runs-frame columns); no MLflow.
- `artifacts`: writes a trial's result as the files attached to its run; no MLflow (`clipstudy train` uses it).
- `provenance`: the git state and package versions tagged on every run; no MLflow.
- `store`: the tracking URI, reachability checks, the client, SQLite lock retries, experiments, paged searches.
- `runs`: writing the study's parent run and its trial runs (params, metrics, tags, artifacts, status).
- `recovery`: after a stop or crash, closing the trial runs left open and adopting the completed runs Tune lost.
- `read`: the study's runs and metric histories as pandas frames, and their artifacts, for the analysis.

This file imports nothing, so `schema` and `artifacts` import without MLflow.
"""
