# Mask R-CNN, CrossFormer-S, 3x: the official 1x recipe (mask_rcnn_crossformer_s_fpn_1x_coco.py)
# for 36 epochs with multi-scale training (section 5.2 of the CrossFormer++ paper, which cites
# DETR for it: mmdet's Swin `ms-crop-3x` pipeline, short side 480-800 and DETR's random crop;
# steps at 27 and 33 as mmdet's 3x schedules). The dense-task group sizes of section 3.3,
# G = [14, 14, 7, 7] and I = [16, 8, 2, 1]: Table IV's 3x row counts the 1x dense row's 291.1G.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', './_base_/crossformer.py',
    './_base_/det_official.py'
]
pretrained = None  # the Swin base's checkpoint; ours is the backbone's init_cfg

model = dict(
    backbone=dict(_base_.crossformer, group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = _base_.det_optim_wrapper
param_scheduler = [
    _base_.det_warmup,
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='CocoDataset')
train_dataloader = dict(dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
