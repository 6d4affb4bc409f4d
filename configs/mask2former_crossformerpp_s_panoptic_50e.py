# Mask2Former, COCO panoptic segmentation, CrossFormer++-S: the recipe and group sizes of
# _base_/det_mask2former_crossformer_coco_panoptic.py.
_base_ = './_base_/det_mask2former_crossformer_coco_panoptic.py'

model = dict(
    backbone=dict(arch='pp-s', init_cfg=dict(checkpoint='checkpoints/crossformerpp-s.pth')),
    panoptic_head=dict(in_channels=[64, 128, 256, 512]))
