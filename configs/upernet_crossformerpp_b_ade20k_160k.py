# UPerNet, CrossFormer++-B: no official config: the recipe and G / I of its official sibling
# upernet_crossformerpp_s_ade20k_160k.py; drop path 0.3 as the official CrossFormer_B2 class.
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='pp-b', drop_path_rate=0.3, group_size=7, interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-b.pth')))
