# Semantic FPN, CrossFormer++-S.
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='pp-s', drop_path_rate=0.2,
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-s.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
