# Mask2Former, COCO panoptic segmentation, CrossFormer-S: mmdet's Swin-S recipe (that of
# det_mask2former_crossformer_coco.py: AdamW, lr 1e-4, weight decay 0.05, the backbone at 0.1x
# the lr, large-scale jittering, 368,750 iterations at 8 GPUs x 2 images), with the dense-task
# group sizes G = [14, 14, 7, 7], I = [16, 8, 2, 1]. No published result.
_base_ = [
    'mmdet::mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py',
    './crossformer.py', './crossformer_mask2former.py'
]
pretrained = None  # the Swin base's checkpoint; ours is the backbone's init_cfg

model = dict(
    backbone=dict(_base_.crossformer, drop_path_rate=0.3, group_size=[14, 14, 7, 7],
                  interval=[16, 8, 2, 1]),
    panoptic_head=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(_delete_=True, **_base_.crossformer_mask2former_keys)))
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='CocoPanopticDataset')
train_dataloader = dict(dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
