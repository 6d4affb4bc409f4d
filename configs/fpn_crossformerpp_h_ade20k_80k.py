# Semantic FPN, CrossFormer++-H.
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='pp-h', drop_path_rate=0.7,
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-h.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
