# UPerNet, CrossFormer-B: the official config (upernet_crossformer_b_ade20k.py), G = 7 and I = [8,
# 4, 2, 1].
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='b', drop_path_rate=0.3, group_size=7, interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformer-b.pth')))
