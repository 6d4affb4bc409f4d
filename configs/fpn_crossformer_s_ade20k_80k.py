# Semantic FPN, CrossFormer-S: the base's backbone as it is.
_base_ = './_base_/seg_fpn_crossformer_ade20k_80k.py'
