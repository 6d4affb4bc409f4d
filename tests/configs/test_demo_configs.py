"""The demo configs (configs/demo): a CrossFormer, trained by iterations, reproducibly.
tests/tools/test_demo.py trains and tests both through tools/train.py and tools/test.py."""
import os

import pytest
from mmengine.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = ['configs/demo/mask-rcnn_crossformer-demo_shapes.py',
           'configs/demo/fpn_crossformer-demo_shapes.py']


@pytest.mark.parametrize('config', CONFIGS)
def test_demo_config_builds_a_crossformer(config):
    cfg = Config.fromfile(os.path.join(ROOT, config))
    assert cfg.model.backbone.type == 'CrossFormer'
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.randomness == dict(seed=0, deterministic=True)
    assert {hook.type for hook in cfg.custom_hooks} == {'RandomStateHook'}
