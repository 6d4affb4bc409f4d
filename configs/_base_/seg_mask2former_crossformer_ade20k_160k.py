# Mask2Former, ADE20K semantic segmentation, CrossFormer-S: mmseg's Swin-S recipe (AdamW, lr 1e-4,
# weight decay 0.05, the backbone at 0.1x the lr, gradients clipped at 0.01, poly decay,
# 512 x 512 crops, 160k iterations at 8 GPUs x 2 images), with the dense-task group sizes
# G = [14, 14, 7, 7], I = [16, 8, 2, 1]. No published result.
_base_ = [
    'mmseg::mask2former/mask2former_swin-s_8xb2-160k_ade20k-512x512.py',
    './crossformer_mask2former.py'
]
pretrained = None  # the Swin base's checkpoint; ours is the backbone's init_cfg

# mmseg's config imports mmdet's models (its Mask2Former head is mmdet's), so crossformer.py,
# which imports the plugin, cannot be one of the bases: the import and the backbone are here.
custom_imports = dict(imports=['mmdet.models', 'crossformer_mm'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='CrossFormer',
        arch='s',
        group_size=[14, 14, 7, 7],
        interval=[16, 8, 2, 1],
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/crossformer-s.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(_delete_=True, **_base_.crossformer_mask2former_keys)))
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='ADE20KDataset')
train_dataloader = dict(dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
