# UPerNet, CrossFormer++-H: no official config: the recipe and G / I of its official sibling
# upernet_crossformerpp_s_ade20k_160k.py; drop path 0.5 as the official ImageNet yaml.
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='pp-h', drop_path_rate=0.5, group_size=7, interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-h.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
