"""clipstudy: hyperparameter studies of CLIP adaptation methods, compared on one footing.

The package map, top (user-facing) to bottom; a part imports only the parts below it, and
tests/test_layers.py checks it on the import graph:

    cli, api      the command line and the Python API
    analysis      MLflow runs -> pandas -> tables, figures, `clipstudy report`, `clipstudy ui`
    study         Ray Tune + Ray Train: a Tuner per arm, Optuna, ASHA, resume (the only place Ray is imported)
    tracking      the MLflow record: tag names, runs, resume bookkeeping, reading (the only place MLflow is)
    studyfile     study file -> validated trial configs: schema, search spaces, resolution, diagnostics
    engine        THE training/evaluation loop, shared by every method
    methods       the method registry; one file a method: what trains, the logits, the extra losses
    models        open_clip (and torchvision) builds, weight lookup, heads, LoRA, split attention
    data          datasets, splits, batched augmentation, Mixup/CutMix, the feature cache
    config        the pure typed schema: every key and its default
    errors, registry   user-facing errors (and warnings); the named registries
"""
