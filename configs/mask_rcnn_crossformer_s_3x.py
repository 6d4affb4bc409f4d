# Mask R-CNN, CrossFormer-S, 3x: AdamW at lr 1e-4, 36 epochs with steps at 27 and 33,
# multi-scale training (480-800 short side, and DETR's random crop), 8 GPUs x 2 images
# (section 5.2 of the CrossFormer++ paper; mmdet's Swin recipe). The dense-task group sizes of
# section 3.3, G = [14, 14, 7, 7] and I = [16, 8, 2, 1]: the paper's 291.1G row.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', './_base_/crossformer.py']
pretrained = None  # the Swin base's checkpoint; ours is the backbone's init_cfg

model = dict(
    backbone=dict(_base_.crossformer, group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]),
    neck=dict(in_channels=[96, 192, 384, 768]))
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='CocoDataset')
train_dataloader = dict(dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
