# Semantic FPN, CrossFormer-S: the official config (the ICLR release's
# fpn_crossformer_s_ade20k_40k.py), which runs the dense-task G and I.
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'

model = dict(backbone=dict(group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]))
