"""Registry names in a config (method, data.name, eval.retention, model.arch), checked at resolution."""

import re
import subprocess
import sys

import pytest

from clipstudy.studyfile.names import CHECKS, known_architecture


def test_architecture_names_are_checked_without_importing_open_clip():
    """`clipstudy validate` and every study driver stay fast: open_clip and torchvision (which imports
    torch._dynamo) take seconds each to import."""
    code = (
        "import sys\n"
        "from clipstudy.studyfile import build_config\n"
        "for arch in ('ViT-B-32', 'ViT-L-14-336', 'clipstudy-tiny-siglip', 'ViT-SO400M-14-SigLIP'):\n"
        "    assert build_config({'model.arch': arch}).model.arch == arch\n"
        "assert 'open_clip' not in sys.modules\n"
        "import clipstudy.study.runner\n"
        "assert 'torchvision' not in sys.modules and 'torch._dynamo' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_architecture_names_match_open_clips_own_list():
    import open_clip

    import clipstudy.models.build  # noqa: F401  (registers the packaged architectures with open_clip)
    from clipstudy.models.names import list_architectures, open_clip_architectures, torchvision_architectures

    assert set(open_clip_architectures()) == set(open_clip.list_models())
    assert set(list_architectures()) == set(open_clip.list_models()) | set(torchvision_architectures())


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("method", "lorra", "unknown method 'lorra' (did you mean 'lora'?); valid: clip_cite, "),
        ("dataset", "cifar1000", "unknown dataset 'cifar1000' (did you mean 'cifar100'?); valid: "),
        ("architecture", "ViT-B-3", "unknown architecture 'ViT-B-3' (did you mean 'ViT-B-32'?)"),
    ],
)
def test_each_kind_refuses_an_unknown_name_with_a_hint(kind, name, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        CHECKS[kind](name)


def test_known_names_pass():
    CHECKS["method"]("lora")
    CHECKS["dataset"]("digits")
    known_architecture("torchvision/resnet50")
