"""Frozen stages under DDP: two processes (tools/dist_train.sh, gloo on CPU) train the demo-size
Mask R-CNN with frozen_stages=1 and =4. The frozen parameters require no gradient before DDP
wraps the model (the backbone freezes them when built, not only in ``train()``), so DDP does not
wait for their gradients ("Expected to have finished reduction in the prior iteration"); they
are unchanged after training and have no optimizer state."""
import os
import subprocess

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from crossformer_mm.checkpoint import read_checkpoint
from _tools import dist_env
from shapes import data_root_options

pytest.importorskip('mmdet')
from mmdet.registry import MODELS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = 'configs/demo/mask-rcnn_crossformer-demo_shapes.py'


@pytest.fixture(scope='module')
def options(data_root) -> list:
    """Two iterations of one 64 px image a process, no validation."""
    options = data_root_options(Config.fromfile(os.path.join(ROOT, CONFIG)), data_root)
    options.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 100,
                    'train_dataloader.batch_size': 1, 'train_dataloader.num_workers': 0,
                    'train_dataloader.persistent_workers': False,
                    'default_hooks.checkpoint.interval': 2})
    return [f'{k}={v}' for k, v in options.items()]


@pytest.mark.slow
def test_frozen_stages_train_under_ddp(options, tmp_path):
    """Stages 1-2 frozen, 3-4 trained, in two processes (one run: each is a whole training)."""
    frozen_stages = 2
    cfg = Config.fromfile(os.path.join(ROOT, CONFIG))
    init_default_scope('mmdet')
    model = MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone,
                                                       frozen_stages=frozen_stages)))
    model.init_weights()
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    stages = [f'backbone.stages.{i}.' for i in range(frozen_stages)]
    assert frozen == {name for name in start if name.startswith(tuple(stages))}
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'start.pth')

    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(tmp_path / 'work'),
         '--cfg-options', *options, f'model.backbone.frozen_stages={frozen_stages}',
         f'load_from={tmp_path / "start.pth"}'],
        cwd=ROOT, env=dist_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Expected to have finished reduction' not in proc.stderr

    checkpoint = read_checkpoint(str(tmp_path / 'work' / 'iter_2.pth'))
    weights = checkpoint['state_dict']
    for name, value in start.items():
        assert torch.equal(weights[name], value) == (name in frozen), name
    # One parameter group of all parameters (model.parameters() order); state only for those
    # that had gradients.
    [group] = checkpoint['optimizer']['param_groups']
    assert group['params'] == list(range(len(start)))
    with_state = {name for i, name in enumerate(start) if i in checkpoint['optimizer']['state']}
    assert with_state == set(start) - frozen
