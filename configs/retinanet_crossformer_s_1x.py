# RetinaNet, CrossFormer-S, 1x: AdamW at lr 1e-4, 12 epochs with steps at 8 and 11, 8 GPUs x 2
# images (section 5.2 of the CrossFormer++ paper). G = 7 and I = [8, 4, 2, 1] as in ImageNet
# pre-training: the 282.0G row; retinanet_crossformer_s_1x_g14.py is the 272.1G row.
_base_ = 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py'
custom_imports = dict(imports=['crossformer_mm'], allow_failed_imports=False)
pretrained = 'checkpoints/crossformer-s.pth'  # ImageNet-1k, see the README

model = dict(
    backbone=dict(
        _delete_=True,
        type='CrossFormer',
        arch='s',
        drop_path_rate=0.2,
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
