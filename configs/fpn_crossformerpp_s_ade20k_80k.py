# Semantic FPN, CrossFormer++-S: the official config
# (crossformer_pp/fpn_crossformerpp_s_ade20k_40k.py), which runs G = 7 and I = [8, 4, 2, 1].
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='pp-s', drop_path_rate=0.2, group_size=7, interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-s.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
