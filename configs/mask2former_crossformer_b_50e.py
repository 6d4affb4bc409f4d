# Mask2Former, COCO instance segmentation, CrossFormer-B: the recipe and group sizes of
# _base_/det_mask2former_crossformer_coco.py.
_base_ = './_base_/det_mask2former_crossformer_coco.py'

model = dict(backbone=dict(arch='b', init_cfg=dict(checkpoint='checkpoints/crossformer-b.pth')))
