# The small CrossFormer of the demo configs, trained from scratch, with groups that fit the
# 16x16 ... 2x2 maps of a 64x64 image, and the widths of its FPN neck.
custom_imports = dict(imports=['crossformer_mm'], allow_failed_imports=False)
dims = 32
crossformer_demo = dict(
    _delete_=True,
    type='CrossFormer',
    arch=dict(embed_dims=dims, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8],
              group_size=[8, 8, 4, 2], interval=[2, 1, 1, 1], with_acl=False),
    drop_path_rate=0.0,
    out_indices=(0, 1, 2, 3))
demo_neck = dict(in_channels=[dims, dims * 2, dims * 4, dims * 8], out_channels=64)
