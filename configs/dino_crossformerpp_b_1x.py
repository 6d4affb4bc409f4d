# DINO, COCO detection, CrossFormer++-B: the recipe and group sizes of
# _base_/det_dino_crossformer_coco.py.
_base_ = './_base_/det_dino_crossformer_coco.py'

model = dict(
    backbone=dict(arch='pp-b', init_cfg=dict(checkpoint='checkpoints/crossformerpp-b.pth')))
