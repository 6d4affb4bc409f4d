# Mask2Former, COCO panoptic segmentation, CrossFormer++-B: the recipe and group sizes of
# _base_/det_mask2former_crossformer_coco_panoptic.py.
_base_ = './_base_/det_mask2former_crossformer_coco_panoptic.py'

model = dict(
    backbone=dict(arch='pp-b', init_cfg=dict(checkpoint='checkpoints/crossformerpp-b.pth')))
