"""crossformer_mm.recipes: an mmseg 0.x config and its mmseg 1 port normalize to the same fields."""
import pytest
from mmengine.config import Config

from crossformer_mm.recipes import normalize

NORM = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def mmseg0(**changes) -> Config:
    """An official-style (mmseg 0.x) UPerNet config, as the official files resolve."""
    cfg = dict(
        model=dict(type='EncoderDecoder', pretrained=None,
                   backbone=dict(type='CrossFormer_S2', group_size=[7, 7, 7, 7],
                                 crs_interval=[8, 4, 2, 1]),
                   neck=dict(type='FPN', in_channels=[32, 64, 128, 256], start_level=1),
                   decode_head=dict(type='UPerHead', num_classes=150)),
        optimizer=dict(type='AdamW', lr=6e-5, weight_decay=0.01,
                       paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)})),
        optimizer_config=dict(),
        lr_config=dict(policy='poly', warmup='linear', warmup_iters=1500, warmup_ratio=1e-6,
                       power=1.0, min_lr=0.0, by_epoch=False),
        runner=dict(type='IterBasedRunner', max_iters=160000),
        evaluation=dict(interval=16000, metric='mIoU'),
        data=dict(samples_per_gpu=2,
                  train=dict(pipeline=[dict(type='LoadImageFromFile'),
                                       dict(type='Resize', img_scale=(2048, 512),
                                            ratio_range=(0.5, 2.0)),
                                       dict(type='RandomFlip', prob=0.5),
                                       dict(type='Normalize', to_rgb=True, **NORM)]),
                  test=dict(pipeline=[
                      dict(type='LoadImageFromFile'),
                      dict(type='MultiScaleFlipAug', img_scale=(2048, 512),
                           img_ratios=[0.5, 1.0], flip=False,
                           transforms=[dict(type='AlignResize', keep_ratio=True),
                                       dict(type='RandomFlip'),
                                       dict(type='Normalize', to_rgb=True, **NORM),
                                       dict(type='Collect', keys=['img'])])])))
    cfg.update(changes)
    return Config(cfg)


def mmseg1(**changes) -> Config:
    """The same recipe as an mmseg 1 config of this repository states it."""
    cfg = dict(
        model=dict(type='EncoderDecoder',
                   data_preprocessor=dict(bgr_to_rgb=True, **NORM),
                   backbone=dict(type='CrossFormer', arch='pp-s', group_size=7,
                                 interval=[8, 4, 2, 1], drop_path_rate=0.2),
                   neck=dict(type='FPN', in_channels=[64, 128, 256]),
                   decode_head=dict(type='UPerHead', num_classes=150)),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=6e-5, weight_decay=0.01),
                           paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.),
                                                           'acl.norm': dict(decay_mult=1.)})),
        param_scheduler=[
            dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
            dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0, end=160000, by_epoch=False)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000),
        val_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        train_dataloader=dict(batch_size=2),
        train_pipeline=[dict(type='LoadImageFromFile'),
                        dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
                             keep_ratio=True),
                        dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')],
        test_pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='Resize', scale=(2048, 512), keep_ratio=True),
                       dict(type='ResizeToMultiple', size_divisor=32),
                       dict(type='LoadAnnotations'), dict(type='PackSegInputs')],
        tta_pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='TestTimeAug', transforms=[
                          [dict(type='Resize', scale=(1024, 256), keep_ratio=True),
                           dict(type='Resize', scale=(2048, 512), keep_ratio=True)],
                          [dict(type='ResizeToMultiple', size_divisor=32)]])])
    cfg.update(changes)
    return Config(cfg)


def test_the_two_generations_normalize_alike():
    official, ours = normalize(mmseg0()), normalize(mmseg1())
    assert official == ours
    assert official['schedule.warmup'] == dict(iters=1500, start_factor=1e-6)
    assert official['schedule.decay'] == dict(type='poly', power=1.0, eta_min=0.0, begin=0)
    assert official['test_pipeline'][:2] == [
        dict(type='Resize', scale=[2048, 512], keep_ratio=True),
        dict(type='ResizeToMultiple', size_divisor=32)]
    assert official['test_multi_scale'] == dict(ratios=[0.5, 1.0], flip=False)
    assert official['model.neck']['in_channels'] == [64, 128, 256]
    # 'norm' exempts the block and embedding norms; the official ACL norm is `ex_ln`.
    assert official['no_weight_decay'] == ['CEL norm', 'block norm']


@pytest.mark.parametrize('field, ours', [
    ('no_weight_decay', dict(optim_wrapper=dict(
        optimizer=dict(type='AdamW', lr=6e-5, weight_decay=0.01),
        paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)})))),
    ('schedule.decay', dict(param_scheduler=[
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
        dict(type='PolyLR', power=1.0, eta_min=0.0, begin=1500, end=160000, by_epoch=False)])),
    ('test_multi_scale', dict(tta_pipeline=[dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(1024, 256), keep_ratio=True),
         dict(type='Resize', scale=(2048, 512), keep_ratio=True)],
        [dict(type='RandomFlip', prob=0.), dict(type='RandomFlip', prob=1.)]])])),
])
def test_a_difference_shows_in_its_field(field, ours):
    official, changed = normalize(mmseg0()), normalize(mmseg1(**ours))
    assert [k for k in official if official[k] != changed[k]] == [field]
