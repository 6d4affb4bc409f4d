# Semantic FPN, CrossFormer++-B.
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='pp-b', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/crossformerpp-b.pth')))
