"""The demo configs (configs/demo) train one iteration and test through tools/train.py and
tools/test.py on a tiny shapes dataset."""
import glob
import json
import math
import os
import subprocess
import sys

import mmengine
import pytest
from mmengine.config import Config

from shapes import data_root_options, make_shapes_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = {
    'configs/demo/mask-rcnn_crossformer-demo_shapes.py': ('coco/bbox_mAP', 'coco/segm_mAP'),
    'configs/demo/fpn_crossformer-demo_shapes.py': ('mIoU', ),
}


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapes')) + '/'
    make_shapes_dataset(root, num_train=4, num_val=2, size=64)
    return root


def tiny_options(config: str, data_root: str) -> list:
    options = data_root_options(Config.fromfile(os.path.join(ROOT, config)), data_root)
    options.update({'train_cfg.max_iters': 1, 'train_cfg.val_interval': 1,
                    'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 1})
    return [f'{k}={v}' for k, v in options.items()]


@pytest.mark.parametrize('config', CONFIGS)
def test_one_iteration_then_test(config, data_root, tmp_path):
    options = tiny_options(config, data_root)
    tool = [sys.executable, 'tools/train.py', config, '--work-dir', str(tmp_path)]
    subprocess.run(tool + ['--cfg-options', *options], cwd=ROOT, check=True)
    checkpoint = tmp_path / 'iter_1.pth'
    assert checkpoint.is_file()
    test_dir, out = tmp_path / 'test', tmp_path / 'predictions.pkl'
    subprocess.run([sys.executable, 'tools/test.py', config, str(checkpoint), '--work-dir',
                    str(test_dir), '--out', str(out), '--cfg-options', *options], cwd=ROOT,
                   check=True)
    with open(glob.glob(str(test_dir / '*' / '*.json'))[-1]) as f:
        metrics = json.load(f)
    assert set(CONFIGS[config]) <= set(metrics)
    assert all(isinstance(metrics[key], float) and math.isfinite(metrics[key])
               for key in CONFIGS[config])
    # One prediction per val image, for the whole 64 x 64 image.
    predictions = mmengine.load(out)
    assert sorted(p['img_path'].rsplit('/', 1)[1] for p in predictions) == \
        sorted(os.listdir(os.path.join(data_root, 'images', 'val')))
    for prediction in predictions:
        if 'pred_sem_seg' in prediction:
            assert prediction['pred_sem_seg']['data'].shape == (1, 64, 64)
        else:
            boxes = prediction['pred_instances']['bboxes']
            assert boxes.shape[1] == 4 and bool((boxes >= 0).all() and (boxes <= 64).all())


@pytest.mark.parametrize('config', CONFIGS)
def test_demo_config_builds_a_crossformer(config):
    cfg = Config.fromfile(os.path.join(ROOT, config))
    assert cfg.model.backbone.type == 'CrossFormer'
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.randomness == dict(seed=0, deterministic=True)
    assert {hook.type for hook in cfg.custom_hooks} == {'RandomStateHook'}
