# RetinaNet, CrossFormer-S, 1x: AdamW at lr 1e-4, 12 epochs with steps at 8 and 11, 8 GPUs x 2
# images (section 5.2 of the CrossFormer++ paper). G = 7 and I = [8, 4, 2, 1] as in ImageNet
# pre-training: the 282.0G row; retinanet_crossformer_s_1x_g14.py is the 272.1G row.
_base_ = ['mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py', './_base_/crossformer.py']
pretrained = None  # the Swin base's checkpoint; ours is the backbone's init_cfg

model = dict(
    backbone=dict(_base_.crossformer, out_indices=(1, 2, 3)),
    neck=dict(in_channels=[192, 384, 768]))
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='CocoDataset')
train_dataloader = dict(dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
