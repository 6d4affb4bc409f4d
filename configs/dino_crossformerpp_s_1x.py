# DINO, COCO detection, CrossFormer++-S: the recipe and group sizes of
# _base_/det_dino_crossformer_coco.py.
_base_ = './_base_/det_dino_crossformer_coco.py'

model = dict(
    backbone=dict(arch='pp-s', init_cfg=dict(checkpoint='checkpoints/crossformerpp-s.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
