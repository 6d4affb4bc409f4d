# The recipe of the official CrossFormer detection configs (github.com/cheerss/CrossFormer,
# detection/configs/, both branches), as variables for the detection configs: AdamW at lr 1e-4
# with weight decay 1e-4 on every parameter (no paramwise exemptions), no gradient clipping,
# and 500 iterations of linear warm-up from 0.001 of the lr (mmcv 1.x's `lr_config`).
det_optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
det_warmup = dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500)
