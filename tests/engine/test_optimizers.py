"""Layer-wise lr decay from a config: mmpretrain's constructor for a classifier, and
BackboneLayerDecayOptimWrapperConstructor for a detector, whose neck and heads get the top
layer's rate."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

from crossformer_mm.engine import BackboneLayerDecayOptimWrapperConstructor

pytest.importorskip('mmpretrain')
pytest.importorskip('mmdet')
from mmdet.testing import demo_mm_inputs  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo', 'mask-rcnn_crossformer-demo_shapes.py')
TINY_PP = dict(embed_dims=16, depths=[1, 1, 4, 1], num_heads=[1, 1, 2, 2],
               group_size=[7, 7, 7, 7], interval=[8, 4, 2, 1], with_acl=True)
RATE = 0.5
LAYER_DECAY = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                   constructor='BackboneLayerDecayOptimWrapperConstructor',
                   paramwise_cfg=dict(layer_decay_rate=RATE, norm_decay_mult=0.))


def detector(**backbone) -> nn.Module:
    """The demo-size Mask R-CNN (CrossFormer, FPN, RPN, box and mask heads)."""
    cfg = Config.fromfile(DEMO)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    return MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone, **backbone)))


def check_groups(model: nn.Module, groups: list, num_layers: int) -> None:
    """One group per trainable parameter; lr = lr * RATE ** (top - depth) with the backbone's
    depth; every other parameter at the top depth; lr falling from the head to the stem."""
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert sorted(g['param_name'] for g in groups) == sorted(trainable)
    assert all(g['params'] == [trainable[g['param_name']]] for g in groups)
    backbone = model.backbone
    for group in groups:
        name = group['param_name']
        depth = backbone.get_layer_depth(name, 'backbone.')[0] if name.startswith(
            'backbone.') else num_layers - 1
        assert group['layer_id'] == depth, name
        assert group['lr'] == pytest.approx(1e-3 * RATE**(num_layers - 1 - depth)), name
    by_depth = {}
    for group in groups:
        by_depth.setdefault(group['layer_id'], set()).add(group['lr'])
    assert all(len(lrs) == 1 for lrs in by_depth.values())
    lrs = [by_depth[d].pop() for d in sorted(by_depth)]
    assert lrs == sorted(lrs) and len(set(lrs)) == len(lrs)
    assert lrs[-1] == 1e-3


def test_detector_neck_and_heads_get_the_top_rate():
    model = detector(frozen_stages=1)
    groups = build_optim_wrapper(model, LAYER_DECAY).optimizer.param_groups
    num_layers = sum(model.backbone.depths) + 2
    check_groups(model, groups, num_layers)
    top = {g['param_name'].split('.')[0] for g in groups if g['lr'] == 1e-3}
    assert top == {'neck', 'rpn_head', 'roi_head'}
    # Frozen stage 1 gets no group; stage 2's CEL (depth 1) has the lowest rate.
    assert min(g['layer_id'] for g in groups) == 1
    assert not any(g['param_name'].startswith('backbone.stages.0.') for g in groups)
    # mmpretrain's other fields still apply: no weight decay for norms.
    norms = [g for g in groups if g['param_name'].startswith('backbone.stages.1.cel.norm.')]
    assert len(norms) == 2 and all(g['weight_decay'] == 0 for g in norms)


def test_classifier_with_mmpretrain_constructor():
    """mmpretrain's ImageClassifier delegates to the backbone: its own constructor works, and
    this package's gives the same groups."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='CrossFormer', arch=TINY_PP, out_indices=(3, ),
                      out_norm_cfg=dict(type='LN')),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=128)))
    groups = {}
    for constructor in ('LearningRateDecayOptimWrapperConstructor',
                        'BackboneLayerDecayOptimWrapperConstructor'):
        cfg = dict(LAYER_DECAY, constructor=constructor)
        groups[constructor] = build_optim_wrapper(model, cfg).optimizer.param_groups
        check_groups(model, groups[constructor], sum(TINY_PP['depths']) + 2)
    ours, theirs = groups.values()
    assert [(g['param_name'], g['lr'], g['weight_decay']) for g in ours] == \
        [(g['param_name'], g['lr'], g['weight_decay']) for g in theirs]


def test_config_with_layer_decay_trains_a_step():
    cfg = Config.fromfile(DEMO)
    cfg.optim_wrapper = dict(cfg.optim_wrapper, constructor=LAYER_DECAY['constructor'],
                             paramwise_cfg=LAYER_DECAY['paramwise_cfg'])
    torch.manual_seed(0)
    model = detector()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert len({g['lr'] for g in optim_wrapper.optimizer.param_groups}) == \
        sum(model.backbone.depths) + 2
    groups = optim_wrapper.optimizer.param_groups
    before = [g['params'][0].detach().clone() for g in groups]
    data = demo_mm_inputs(2, [[3, 64, 64]] * 2, num_items=[3, 2], num_classes=3,
                          with_mask=True)
    log_vars = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    # Every depth trained, each at its own lr.
    changed = {g['layer_id'] for g, b in zip(groups, before) if not torch.equal(g['params'][0], b)}
    assert changed == set(range(sum(model.backbone.depths) + 2))


def test_a_backbone_without_depths_is_named():
    model = nn.Module()
    model.backbone = nn.Linear(2, 2)
    with pytest.raises(NotImplementedError, match='layer-wise lr decay needs a backbone with '
                       'get_layer_depth; Module.backbone is Linear'):
        build_optim_wrapper(model, LAYER_DECAY)


def test_without_mmpretrain_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'mmpretrain.engine.optimizers', None)
    with pytest.raises(ImportError, match=r'needs mmpretrain: pip install "crossformer_mm\[cls\]"'):
        build_optim_wrapper(detector(), LAYER_DECAY)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_registered_in_mmengine_only(scope):
    """Found from each toolbox's registry through mmengine's root, added to none of them."""
    registry = pytest.importorskip(f'{scope}.registry').OPTIM_WRAPPER_CONSTRUCTORS
    name = BackboneLayerDecayOptimWrapperConstructor.__name__
    assert name not in registry.module_dict
    assert registry.get(name) is BackboneLayerDecayOptimWrapperConstructor
