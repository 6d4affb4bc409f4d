# UPerNet with a CrossFormer backbone on ADE20K 512x512, as the official configs
# (segmentation/configs/upernet_crossformer_*_ade20k.py) train it: AdamW at lr 6e-5, betas
# (0.9, 0.999), weight decay 0.01 but none for the parameters named `norm`, no gradient clipping;
# 1500 iterations of linear warm-up from 1e-6 of the lr, and linear decay (poly, power 1) to 0
# over all 160k iterations (mmcv 1.x's poly counts from iteration 0, warm-up included); 8 GPUs x
# 2 images. mmseg's UPerNet with the auxiliary FCN head on stage 3, as theirs.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py', './seg_ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py', './crossformer.py'
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=_base_.crossformer,
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    # The official key; the official amplitude cooling layer's norm is `ex_ln`, which `norm`
    # does not match, so it keeps its weight decay here too.
    paramwise_cfg=dict(
        custom_keys={'norm': dict(decay_mult=0.), 'acl.norm': dict(decay_mult=1.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0, end=160000, by_epoch=False)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='ADE20KDataset')
train_dataloader = dict(batch_size=2, dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
