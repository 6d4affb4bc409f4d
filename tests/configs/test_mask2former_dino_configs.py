"""Mask2Former (COCO instance and panoptic, ADE20K semantic) and DINO (COCO) configs.

No result has been published for them, so what is checked: each variant exists and is the
toolbox's Swin config with a CrossFormer (its recipe, backbone lr and weight decay settings
included), builds with the metafile's Params, and each head family trains a step and infers on a
tiny variant (a small CrossFormer++, few queries and layers, 64 x 64 images). Counting FLOPs at
the metafile's shapes takes minutes per model on a CPU: only with ``CROSSFORMER_MM_FLOPS=1``.
"""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import PixelData

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')
from mmdet.testing import demo_mm_inputs  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from crossformer_mm.analysis import count_complexity  # noqa: E402
from zoo import models  # noqa: E402

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
# Head family: (name of its configs after the backbone, the toolbox config they inherit, where
# the backbone's widths go).
FAMILIES = {
    'instance': ('mask2former', '50e', 'mmdet::mask2former/'
                 'mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py', 'panoptic_head'),
    'panoptic': ('mask2former', 'panoptic_50e', 'mmdet::mask2former/'
                 'mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py', 'panoptic_head'),
    'ade20k': ('mask2former', 'ade20k_160k',
               'mmseg::mask2former/mask2former_swin-s_8xb2-160k_ade20k-512x512.py',
               'decode_head'),
    'dino': ('dino', '1x', 'mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py', 'neck'),
}
VARIANTS = {'crossformer_s': 's', 'crossformer_b': 'b', 'crossformerpp_s': 'pp-s',
            'crossformerpp_b': 'pp-b'}
# Config name -> (head family, arch).
NAMES = {f'{head}_{variant}_{schedule}': (family, arch)
         for family, (head, schedule, _, _) in FAMILIES.items()
         for variant, arch in VARIANTS.items()}
TINY_PP = dict(embed_dims=16, depths=[1, 1, 4, 1], num_heads=[1, 1, 2, 2],
               group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1], with_acl=True)


def load(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIGS, f'{name}.py'))


def plain(node):
    """A config node as plain dicts and lists, less the ``_scope_`` keys that inheriting from
    another package's config adds."""
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    return node


def build(model_cfg: dict, scope: str) -> torch.nn.Module:
    init_default_scope(scope)
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.backbone.init_cfg = None
    return MODELS.build(model_cfg)


def test_every_variant_exists_without_a_published_result():
    configs = {name[:-3] for name in os.listdir(CONFIGS)
               if name.startswith(('mask2former_', 'dino_'))}
    assert configs == set(NAMES)
    for name in NAMES:
        assert models()[name]['Results'][0]['Metrics'] == {}


@pytest.mark.parametrize('name', sorted(NAMES))
def test_recipe_is_the_swin_configs(name):
    """Everything but the backbone, its widths and its parameter names is the Swin config's."""
    cfg, (family, arch) = load(name), NAMES[name]
    _, _, swin_config, head = FAMILIES[family]
    swin = get_config(swin_config)
    # mmseg's Mask2Former config imports mmdet's models, ours the plugin too.
    imports = ['mmdet.models'] * (family == 'ade20k') + ['crossformer_mm']
    assert cfg.custom_imports.imports == imports
    for key in ('param_scheduler', 'train_cfg', 'auto_scale_lr', 'train_pipeline'):
        assert plain(cfg.get(key)) == plain(swin.get(key)), key
    optim, swin_optim = plain(cfg.optim_wrapper), plain(swin.optim_wrapper)
    optim['paramwise_cfg'].pop('custom_keys', None)
    swin_optim['paramwise_cfg'].pop('custom_keys', None)
    assert optim == swin_optim
    assert cfg.train_dataloader.dataset.type == 'NameFilesOnError'
    assert cfg.train_dataloader.dataset.dataset_type == swin.train_dataloader.dataset.type
    swin_model, model = plain(swin.model), plain(cfg.model)
    assert model.pop('backbone')['type'] == 'CrossFormer'
    swin_model.pop('backbone')
    widths = [model[head].pop('in_channels'), swin_model[head].pop('in_channels')]
    assert model == swin_model

    backbone = cfg.model.backbone
    assert backbone.arch == arch
    assert (backbone.group_size, backbone.interval) == ([14, 14, 7, 7], [16, 8, 2, 1])
    assert backbone.drop_path_rate == swin.model.backbone.drop_path_rate
    # All four stages, CrossFormer's default.
    assert 'out_indices' not in backbone and swin.model.backbone.out_indices == (0, 1, 2, 3)
    checkpoint = 'crossformer{}-{}.pth'.format('pp' if arch.startswith('pp') else '', arch[-1])
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=f'checkpoints/{checkpoint}')
    dims = 64 if arch == 'pp-s' else 96
    assert widths[0] == [dims * 2**i for i in range(4)]


def tiny(name: str) -> Config:
    """The config with a small CrossFormer++ and a head of the same modules and losses cut down
    to 10 queries, one or two layers and (Mask2Former) 64 channels, on 64 x 64 images."""
    cfg = load(name)
    model = cfg.model
    model.backbone.update(arch=TINY_PP, drop_path_rate=0.)
    dims = [16, 32, 64, 128]
    ffn = dict(embed_dims=64, feedforward_channels=128)
    encoder = dict(num_layers=1, layer_cfg=dict(self_attn_cfg=dict(embed_dims=64), ffn_cfg=ffn))
    layer = dict(encoder['layer_cfg'], cross_attn_cfg=dict(embed_dims=64))
    if NAMES[name][0] == 'dino':
        # DINO's decoder encodes boxes for 256 channels only.
        model.update(num_queries=10, neck=dict(in_channels=dims), encoder=dict(num_layers=1),
                     decoder=dict(num_layers=1), dn_cfg=dict(group_cfg=dict(num_dn_queries=4)),
                     test_cfg=dict(max_per_img=10))
        return cfg
    head = model.get('panoptic_head') or model.decode_head
    head.update(in_channels=dims, feat_channels=64, out_channels=64, num_queries=10,
                pixel_decoder=dict(encoder=encoder, positional_encoding=dict(num_feats=32)),
                positional_encoding=dict(num_feats=32),
                transformer_decoder=dict(num_layers=2, layer_cfg=layer))
    train_cfg = model.train_cfg if 'panoptic_head' in model else head.train_cfg
    train_cfg.num_points = 64
    if NAMES[name][0] == 'ade20k':
        model.data_preprocessor.size = (64, 64)
    else:
        model.data_preprocessor.batch_augments[0].size = (64, 64)
        model.test_cfg.max_per_image = 10
    return cfg


def seg_batch(num: int = 2) -> dict:
    """ADE20K-like: uint8 images, labels 0..149 and 255 (ignored)."""
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(num):
        inputs.append(torch.randint(0, 256, (3, 64, 64), generator=gen, dtype=torch.uint8))
        label = torch.randint(0, 150, (1, 64, 64), generator=gen)
        label[:, :8] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', ['mask2former_crossformer_s_50e',
                                  'mask2former_crossformer_s_panoptic_50e',
                                  'mask2former_crossformer_s_ade20k_160k',
                                  'dino_crossformer_s_1x'])
def test_tiny_variant_trains_a_step_and_infers(name):
    family = NAMES[name][0]
    cfg = tiny(name)
    torch.manual_seed(0)  # the same weights whatever ran before
    model = build(cfg.model, cfg.default_scope)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # The Swin recipe in CrossFormer's names: the backbone at 0.1x the lr, without weight decay
    # for its norms (CEL, block, ACL) and DPBs.
    lr, decay = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    groups = {id(p): g for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    no_decay = {f'{prefix}.{name}' for prefix, module in model.backbone.named_modules()
                for name, _ in module.named_parameters(recurse=False)
                if isinstance(module, torch.nn.LayerNorm) or '.dpb' in prefix}
    assert any('.acl.norm' in name for name in no_decay)
    for name_, param in model.backbone.named_parameters():
        group = groups[id(param)]
        assert group['lr'] == pytest.approx(0.1 * lr), name_
        if family != 'dino':
            assert group['weight_decay'] == (0. if name_ in no_decay else decay), name_

    if family == 'ade20k':
        data = seg_batch()
    else:
        data = demo_mm_inputs(2, [[3, 64, 64]] * 2, num_items=[3, 2], num_classes=80,
                              with_mask=family != 'dino', with_semantic=family == 'panoptic',
                              sem_seg_output_strides=1)
    # Every stage's CEL projections train (gradients clipped at 0.01 leave some of the tiny
    # model's weights an Adam step below their float resolution).
    projs = [p for stage in model.backbone.stages for p in stage.cel.projs.parameters()]
    before = [p.detach().clone() for p in projs]
    log_vars = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    assert all(not torch.equal(a, b) for a, b in zip(before, projs))

    model.eval()
    with torch.no_grad():
        [result] = model.test_step(dict(inputs=data['inputs'][:1],
                                        data_samples=data['data_samples'][:1]))
    if family == 'ade20k':
        assert result.pred_sem_seg.data.shape == (1, 64, 64)
    elif family == 'panoptic':
        assert result.pred_panoptic_seg.sem_seg.shape == (1, 64, 64)
    else:
        pred = result.pred_instances
        assert pred.bboxes.shape == (10, 4) and len(pred.scores) == len(pred.labels) == 10
        assert ('masks' in pred) == (family == 'instance')


@pytest.fixture(scope='module', params=sorted(NAMES))
def model(request):
    """(config name, the config's model without its checkpoint)."""
    cfg = load(request.param)
    return request.param, build(cfg.model, cfg.default_scope)


def test_params_match_the_metafile(model):
    name, model = model
    assert sum(p.numel() for p in model.parameters()) == \
        models()[name]['Metadata']['Parameters']


@pytest.mark.skipif(not os.environ.get('CROSSFORMER_MM_FLOPS'),
                    reason='minutes per model on a CPU; set CROSSFORMER_MM_FLOPS=1')
def test_flops_match_the_metafile(model):
    name, model = model
    meta = models()[name]['Metadata']
    assert count_complexity(model, tuple(meta['FLOPs Input Shape'][1:])) == \
        (meta['Parameters'], meta['FLOPs'], meta['FLOPs LDA as published'])
