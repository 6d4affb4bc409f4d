# Semantic FPN, CrossFormer-L: the official config (fpn_crossformer_l_ade20k_40k.py), which runs
# the dense-task G and I.
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='l', drop_path_rate=0.5, group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformer-l.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
