# Semantic FPN, CrossFormer++-H: no official config: the recipe and G / I of its official sibling
# fpn_crossformerpp_s_ade20k_80k.py; drop path 0.5 as the official ImageNet yaml.
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='pp-h', drop_path_rate=0.5, group_size=7, interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-h.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
