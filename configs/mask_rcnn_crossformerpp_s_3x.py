# Mask R-CNN, CrossFormer++-S, 3x: the recipe of mask_rcnn_crossformer_s_3x.py.
_base_ = ['./mask_rcnn_crossformer_s_3x.py', './_base_/det_crossformerpp_s.py']

model = dict(backbone=_base_.crossformerpp_s, neck=dict(in_channels=[64, 128, 256, 512]))
