from clipstudy.config import config_keys, key_problems


def test_contract_keys_exist():
    keys = set(config_keys())
    for key in [
        "model.arch",
        "model.pretrained",
        "data.name",
        "data.root",
        "data.download",
        "data.val_fraction",
        "head.kind",
        "head.dropout",
        "head.hidden",
        "lora.r",
        "lora.alpha",
        "lora.dropout",
        "lora.targets",
        "lora.towers",
        "train.epochs",
        "train.batch_size",
        "train.optimizer",
        "train.lr",
        "train.backbone_lr",
        "train.head_lr",
        "train.layer_decay",
        "train.weight_decay",
        "train.scheduler",
        "train.warmup_epochs",
        "train.label_smoothing",
        "train.precision",
        "train.seed",
        "augment.mixup_alpha",
        "augment.cutmix_alpha",
        "augment.mix_prob",
    ]:
        assert key in keys, key


def test_protocol_and_objective_keys_exist():
    keys = set(config_keys())
    assert {"data.shots", "data.shot_seed", "data.classes", "eval.retention", "eval.retention_per_class"} <= keys
    assert {"loss.scl_weight", "loss.vld_weight", "wise.alphas", "tokens.keep_ratio"} <= keys


def test_key_problems_name_each_bad_key_with_a_hint():
    assert key_problems(["method", "train.lr", "train.lrr", "train", "trian.lr"]) == {
        "train.lrr": "unknown config key 'train.lrr' (did you mean 'train.lr'?)",
        "train": "'train' is a section; set one of its fields, e.g. 'train.*'",
        "trian.lr": "unknown config key 'trian.lr' (did you mean 'train.lr'?)",
    }


def test_a_renamed_key_gets_its_new_name():
    assert key_problems(["train.min_lr"]) == {
        "train.min_lr": "'train.min_lr' was renamed 'train.eta_min'; set that instead"
    }
    assert "train.eta_min" in config_keys()
