# RetinaNet, CrossFormer-S, 1x: the official config (retinanet_crossformer_s_fpn_1x_coco.py):
# AdamW at lr 1e-4 and weight decay 1e-4, 500 warm-up iterations, 12 epochs with steps at 8 and
# 11, 8 GPUs x 2 images, 1333 x 800. G = 7 and I = [8, 4, 2, 1] as in ImageNet pre-training:
# the 282.0G row; retinanet_crossformer_s_1x_g14.py is the 272.1G row.
_base_ = [
    'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py', './_base_/crossformer.py',
    './_base_/det_official.py'
]
pretrained = None  # the Swin base's checkpoint; ours is the backbone's init_cfg

model = dict(
    backbone=dict(_base_.crossformer, out_indices=(1, 2, 3)),
    neck=dict(in_channels=[192, 384, 768]))
optim_wrapper = _base_.det_optim_wrapper
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='CocoDataset')
train_dataloader = dict(dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
