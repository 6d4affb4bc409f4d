# Semantic FPN with a CrossFormer backbone on ADE20K 512x512, as the official configs
# (segmentation/configs/fpn_crossformer_*_ade20k_40k.py) train it: AdamW with lr and weight
# decay 1e-4 on every parameter, no gradient clipping, poly decay (power 0.9) to 0 over 80k
# iterations, no warm-up, batch 16 (here 8 GPUs x 2; the official 4 images per GPU ran on 4).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', './seg_ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py', './crossformer.py'
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=_base_.crossformer,
    neck=dict(in_channels=[96, 192, 384, 768]),
    decode_head=dict(num_classes=150))

optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='ADE20KDataset')
train_dataloader = dict(batch_size=2, dataset=name_files)
val_dataloader = dict(dataset=name_files)
test_dataloader = dict(dataset=name_files)
