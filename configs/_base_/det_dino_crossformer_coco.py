# DINO, COCO detection, CrossFormer-S: mmdet's Swin-L DINO recipe (dino-5scale_swin-l, on the
# 4-scale ResNet-50 one: AdamW, lr 1e-4, weight decay 1e-4, the backbone at 0.1x the lr,
# gradients clipped at 0.1, 12 epochs with a step at 11, 8 GPUs x 2 images): five feature
# levels from the four stages, with the dense-task group sizes G = [14, 14, 7, 7],
# I = [16, 8, 2, 1]. No published result.
_base_ = ['mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py', './crossformer.py']
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
