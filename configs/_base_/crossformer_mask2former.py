# The optimizer settings of mmdet's and mmseg's Swin Mask2Former configs in CrossFormer's names:
# the backbone at 0.1x the lr, and no weight decay for its norms (stage i's CEL, a block's norm1,
# norm2 and ACL), for its DPBs (which give the relative position biases, as Swin's
# relative_position_bias_table) and for the queries' and levels' embeddings. Keys are listed for
# the deepest variant's blocks, [2, 2, 18, 2]; those of blocks a model lacks match nothing.
crossformer_backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
crossformer_mask2former_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.norm': crossformer_backbone_no_decay,  # out norms, with out_norm_cfg
    'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
    'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
    'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
}
crossformer_mask2former_keys.update({
    f'backbone.stages.{stage}.{part}': crossformer_backbone_no_decay
    for stage, depth in enumerate([2, 2, 18, 2])
    for part in ['cel.norm'] + [f'blocks.{block}.{name}' for block in range(depth)
                                for name in ('norm', 'acl.norm', 'attn.dpb')]
})
