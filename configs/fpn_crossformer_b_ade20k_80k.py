_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='b',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/crossformer-b.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
