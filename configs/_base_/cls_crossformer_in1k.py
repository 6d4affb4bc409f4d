# ImageNet-1k recipe of the official code (config.py, main.py and each variant's yaml; the
# paper's section 5.1), which is Swin's and mmpretrain's Swin recipe: AdamW, lr 1e-3 at batch
# 1024 (8 GPUs x 128), weight decay 0.05 but none for 1-D parameters and biases, 300 epochs of
# cosine decay to 1e-5 after 20 linear warm-up epochs from 1e-6, RandAugment, Mixup 0.8, CutMix
# 1.0, random erasing 0.25, label smoothing 0.1, gradient clipping at 5, mixed precision (the
# official `--amp-opt-level native`). Each variant sets its arch, its drop path rate (its yaml's)
# and the head's input width.
_base_ = [
    'mmpretrain::_base_/models/swin_transformer/tiny_224.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
    './crossformer.py',
]

# The official classifier: last stage, LayerNorm (official `norm`), average pool, linear `head`.
model = dict(
    backbone=dict(
        _base_.crossformer,
        arch='t',
        drop_path_rate=0.1,
        out_indices=(3, ),
        out_norm_cfg=dict(type='LN'),
        init_cfg=None))  # trained from scratch

optim_wrapper = dict(type='AmpOptimWrapper', clip_grad=dict(max_norm=5.0))
# Checkpoints complete or absent, even if the run is killed while it writes one.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# Data loading errors name the file they come from.
name_files = dict(type='NameFilesOnError', dataset_type='ImageNet')
# 8 GPUs x 128 images, as the paper trains.
train_dataloader = dict(batch_size=128, dataset=name_files)
val_dataloader = dict(batch_size=128, dataset=name_files)
test_dataloader = val_dataloader
