# Mask R-CNN, CrossFormer-S, 1x: the official config (mask_rcnn_crossformer_s_fpn_1x_coco.py):
# AdamW at lr 1e-4 and weight decay 1e-4, 500 warm-up iterations, 12 epochs with steps at 8 and
# 11, 8 GPUs x 2 images, 1333 x 800. G = 7 and I = [8, 4, 2, 1] as in ImageNet pre-training:
# the 301.0G row; mask_rcnn_crossformer_s_1x_g14.py is the 291.1G row.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/crossformer.py',
    './_base_/det_official.py'
]
pretrained = None  # the Swin base's checkpoint; ours is the backbone's init_cfg

model = dict(backbone=_base_.crossformer, neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = _base_.det_optim_wrapper
param_scheduler = [
    _base_.det_warmup,
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='CocoDataset')
train_dataloader = dict(dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
