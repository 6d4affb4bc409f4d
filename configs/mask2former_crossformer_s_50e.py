# Mask2Former, COCO instance segmentation, CrossFormer-S: the recipe and group sizes of
# _base_/det_mask2former_crossformer_coco.py.
_base_ = './_base_/det_mask2former_crossformer_coco.py'
