# UPerNet, CrossFormer-S: Table V's first row, the official release, which runs the
# classification G and I.
_base_ = './_base_/seg_upernet_crossformer_ade20k_160k.py'

model = dict(backbone=dict(group_size=7, interval=[8, 4, 2, 1]))
