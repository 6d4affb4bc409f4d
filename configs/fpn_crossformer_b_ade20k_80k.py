# Semantic FPN, CrossFormer-B: the official config (fpn_crossformer_b_ade20k_40k.py), which runs
# G = 7 and I = [8, 4, 2, 1], Table V's 331.0G setting (the official README prints the 320.1G
# row, the dense setting's count, beside this config).
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(
    backbone=dict(
        arch='b', drop_path_rate=0.3, group_size=7, interval=[8, 4, 2, 1],
        init_cfg=dict(checkpoint='checkpoints/crossformer-b.pth')))
