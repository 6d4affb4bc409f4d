# Mask2Former, ADE20K semantic segmentation, CrossFormer++-B: the recipe and group sizes of
# _base_/seg_mask2former_crossformer_ade20k_160k.py.
_base_ = './_base_/seg_mask2former_crossformer_ade20k_160k.py'

model = dict(
    backbone=dict(arch='pp-b', init_cfg=dict(checkpoint='checkpoints/crossformerpp-b.pth')))
