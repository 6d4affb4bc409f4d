# UPerNet, CrossFormer-S: the official config (the ICLR release's
# upernet_crossformer_s_ade20k.py), G = 7 and I = [8, 4, 2, 1]: Table V's first row.
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(backbone=dict(group_size=7, interval=[8, 4, 2, 1]))
