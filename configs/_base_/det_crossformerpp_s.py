# CrossFormer++-S as the detection configs run it: with CrossFormer's G and I, not the ImageNet
# [4, 4, 14, 7] / [4, 2, 1, 1] of CrossFormer++ (only that gives the papers' FLOPs).
crossformerpp_s = dict(
    _delete_=True,
    type='CrossFormer',
    arch='pp-s',
    group_size=7,
    interval=[8, 4, 2, 1],
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/crossformerpp-s.pth'))
