# Mask R-CNN, CrossFormer++-S, 3x (no official config): the 3x recipe of
# mask_rcnn_crossformer_s_3x.py with the backbone of the official ++S 1x config (G = 7: the 3x
# row counts the 1x row's 287.4G).
_base_ = ['./mask_rcnn_crossformer_s_3x.py', './_base_/det_crossformerpp_s.py']

model = dict(backbone=_base_.crossformerpp_s, neck=dict(in_channels=[64, 128, 256, 512]))
