# UPerNet, CrossFormer-L: the official config (upernet_crossformer_l_ade20k.py), G = 7 and I = [8,
# 4, 2, 1].
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(
        arch='l', drop_path_rate=0.5, group_size=7, interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformer-l.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
