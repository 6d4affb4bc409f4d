# Semantic FPN, CrossFormer++-L.
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='pp-l', drop_path_rate=0.5,
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-l.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
