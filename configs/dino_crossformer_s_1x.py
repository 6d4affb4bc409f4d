# DINO, COCO detection, CrossFormer-S: the recipe and group sizes of
# _base_/det_dino_crossformer_coco.py.
_base_ = './_base_/det_dino_crossformer_coco.py'
