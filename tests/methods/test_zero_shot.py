import torch
import torch.nn.functional as F

import clipstudy.engine.trainer as trainer_module
from clipstudy.engine import Trainer


def test_zero_shot_logits_equal_a_hand_computation(tiny_config):
    trainer = Trainer(tiny_config("zero_shot", prompts__templates="ensemble"))
    clip, data = trainer.model.clip, trainer.data
    images = trainer.eval_transform(data.val.images[:8])
    with torch.no_grad():
        logits = trainer.model(images)
        image = F.normalize(clip.encode_image(images), dim=-1)
        weights = []
        for name in data.classnames:
            prompts = trainer.built.tokenizer([t.format(name) for t in data.templates])
            text = F.normalize(clip.encode_text(prompts), dim=-1).mean(dim=0)
            weights.append(F.normalize(text, dim=-1))
        expected = clip.logit_scale.exp() * image @ torch.stack(weights).T
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_single_template_uses_only_the_first(tiny_config):
    trainer = Trainer(tiny_config("zero_shot", prompts__templates="single"))
    clip, data = trainer.model.clip, trainer.data
    with torch.no_grad():
        prompts = trainer.built.tokenizer([data.templates[0].format(n) for n in data.classnames])
        expected = F.normalize(clip.encode_text(prompts), dim=-1)
    torch.testing.assert_close(trainer.model.head.weight, expected, rtol=1e-5, atol=1e-6)


def test_zero_shot_runs_epoch_zero_only(tiny_config):
    result = Trainer(tiny_config("zero_shot", train__epochs=5)).fit()
    assert [h["epoch"] for h in result.history] == [0]
    assert result.metrics["best_epoch"] == 0


def test_zero_shot_neither_decodes_nor_encodes_the_train_split(tiny_config, monkeypatch):
    encoded: list[int] = []
    encode = trainer_module.Evaluator.encode
    monkeypatch.setattr(
        trainer_module.Evaluator,
        "encode",
        lambda self, fn, images: encoded.append(len(images)) or encode(self, fn, images),
    )
    trainer = Trainer(tiny_config("zero_shot"))
    assert set(trainer.sources) == {"val", "test"} and len(trainer.data.train) == 0
    assert encoded == [len(trainer.data.val), len(trainer.data.test)]
    assert trainer.fit().metrics["test/acc"] >= 0


def test_zero_shot_and_a_linear_probe_share_their_evaluation_features(tiny_config):
    zero_shot = Trainer(tiny_config("zero_shot"))
    probe = Trainer(tiny_config("linear_probe"))
    for split in ("val", "test"):
        assert zero_shot.feature_key(split) == probe.feature_key(split)
        torch.testing.assert_close(zero_shot.sources[split][0], probe.sources[split][0], rtol=0, atol=0)
