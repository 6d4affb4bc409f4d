"""tools/convert_checkpoint.py without the real official files.

Official-format checkpoints are written from the official key lists in ``tests/data/reference``
(classifiers) or from a randomly initialised model of a config (detectors, segmentors), converted,
loaded through this repository's configs with ``strict=True``, and must give the same outputs.
"""
import glob
import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner import load_checkpoint

import crossformer_mm  # noqa: F401
from crossformer_mm.checkpoint import read_checkpoint
from convert_checkpoint import (PREFIX_RULES, convert_checkpoint, convert_state_dict,
                                detect_kind)
from _reference import load_case, official_keys, ours_to_official

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs'
CLS_CONFIGS = {
    't': 'crossformer_t', 's': 'crossformer_s', 'b': 'crossformer_b', 'l': 'crossformer_l',
    'pp_s': 'crossformerpp_s', 'pp_b': 'crossformerpp_b', 'pp_l': 'crossformerpp_l',
    'pp_h': 'crossformerpp_h'
}
KINDS = {'mmdet': 'detector', 'mmseg': 'segmentor'}


def build(cfg: Config, scope: str) -> torch.nn.Module:
    """The model of ``cfg`` in the registry scope of its toolbox."""
    init_default_scope(scope)
    models = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(cfg.model).eval()


def to_official(state: dict, kind: str) -> dict:
    """Our state dict in official names: the inverse of the converter's tables."""
    out = {}
    for key, value in state.items():
        name = ours_to_official(key[len('backbone.'):]) if key.startswith('backbone.') else None
        if name is not None:
            new = name if kind == 'classifier' else 'backbone.' + name
        else:
            new = next(old + key[len(ours):] for old, ours in PREFIX_RULES[kind]
                       if key.startswith(ours))
        out[new] = value
    return out


# ------------------------------------------------------------------------------- classifiers
@pytest.mark.parametrize('variant', list(CLS_CONFIGS))
def test_official_classifier_keys_load_strictly(variant):
    """Every key of each official ImageNet classifier lands on a parameter of our config."""
    keys = official_keys(variant)
    state = {key: torch.zeros(shape) for key, shape in keys.items()}
    conv = convert_state_dict(state)
    assert conv.kind == 'classifier' and not conv.unknown and not conv.kept
    model = build(Config.fromfile(CONFIGS / f'{CLS_CONFIGS[variant]}_in1k.py'), 'mmpretrain')
    own = model.state_dict()
    assert sorted(conv.state_dict) == sorted(own)
    assert all(own[k].shape == v.shape for k, v in conv.state_dict.items())


def golden_classifier(name: str, tmp_path: Path, official_imagenet_checkpoint):
    """(converted model, golden case): the official random weights, saved as the official
    training code saves them, through our config."""
    golden = load_case(name)
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save(official_imagenet_checkpoint(golden['state_dict']), src)
    assert convert_checkpoint(str(src), str(dst)).kind == 'classifier'
    official = golden['config']
    cfg = Config.fromfile(CONFIGS / 'crossformer_t_in1k.py')
    cfg.model.backbone.update(
        drop_path_rate=0.,
        arch=dict(embed_dims=official['embed_dim'], depths=official['depths'],
                  num_heads=official['num_heads'], group_size=official['group_size'],
                  interval=official['crs_interval'], with_acl=official['use_acl']))
    cfg.model.head.update(num_classes=golden['logits'].shape[1],
                          in_channels=official['embed_dim'] * 8)
    model = build(cfg, 'mmpretrain')
    load_checkpoint(model, str(dst), strict=True)
    return model, golden


@pytest.mark.parametrize('name', ['cls_tiny', 'cls_pp_tiny'])
def test_golden_classifier_logits(name, tmp_path, official_imagenet_checkpoint):
    """The official classifiers' logits, through mmpretrain's ImageClassifier, to 1e-4."""
    model, golden = golden_classifier(name, tmp_path, official_imagenet_checkpoint)
    with torch.no_grad():
        logits = model(golden['input'], mode='tensor')
    err = (logits - golden['logits']).abs().max().item()
    print(f'{name}: max |logits - official| = {err:.2e}')
    assert err < 1e-4


# ------------------------------------------------------------------ detectors and segmentors
#: Config name prefix here -> the stock config of that model type, used while none exists here.
STOCK = {'retinanet_': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
         'mask_rcnn_': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
         'cascade_mask_rcnn_': 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
         'upernet_': 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
         'fpn_': 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'}


def load_config(path: str) -> Config:
    return get_config(path) if '::' in path else Config.fromfile(path)


#: The heads of the official releases, whose checkpoints the converter reads (Mask2Former and
#: DINO have no official checkpoint).
OFFICIAL_HEADS = ('retinanet_', 'mask_rcnn_', 'cascade_mask_rcnn_', 'fpn_', 'upernet_')


def dense_configs() -> list:
    """This repository's det / seg configs of the official heads (a broken one fails its test,
    not the collection)."""
    paths = []
    for path in sorted(glob.glob(str(CONFIGS / '*.py'))):
        if not os.path.basename(path).startswith(OFFICIAL_HEADS):
            continue
        try:
            scope = Config.fromfile(path).get('default_scope')
        except Exception:
            scope = 'mmdet'
        if scope in ('mmdet', 'mmseg'):
            paths.append(os.path.basename(path))
    return paths


def dense_config(path: str) -> Config:
    """The config's model; a stock one with CrossFormer-T in place of its ResNet-50."""
    cfg = load_config(path if '::' in path else str(CONFIGS / path))
    if cfg.model.backbone.type != 'CrossFormer':
        cfg.model.backbone = dict(type='CrossFormer', arch='t', group_size=[14, 14, 7, 7],
                                  interval=[16, 8, 2, 1])
        dims = [64, 128, 256, 512]
        (cfg.model.get('neck') or cfg.model.decode_head).in_channels = dims  # FPN or UPerHead
        if cfg.model.get('auxiliary_head'):
            cfg.model.auxiliary_head.in_channels = dims[2]
        cfg.model.pop('pretrained', None)
    cfg.model.backbone.pop('init_cfg', None)
    return cfg


def scope_of(cfg: Config) -> str:
    return cfg.get('default_scope') or cfg.model.get('_scope_')


def tensor_outputs(model, inputs: torch.Tensor) -> list:
    """Raw head outputs (``mode='tensor'``); two-stage detectors also need image metas."""
    samples = None
    if getattr(model, 'with_rpn', False):
        from mmdet.structures import DetDataSample
        shape = tuple(inputs.shape[-2:])
        samples = [DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape,
                                               batch_input_shape=shape, pad_shape=shape,
                                               scale_factor=(1., 1.)))]
    with torch.no_grad():
        outs = model._forward(inputs, samples)
    return [t for t in _flatten(outs) if isinstance(t, torch.Tensor)]


def _flatten(x):
    if isinstance(x, (list, tuple)):
        for item in x:
            yield from _flatten(item)
    elif isinstance(x, dict):
        for item in x.values():
            yield from _flatten(item)
    else:
        yield x


@pytest.mark.parametrize('path', dense_configs())
def test_dense_config_loads_converted_keys(path):
    """Official names of each det / seg config's model convert to exactly its own keys."""
    cfg = dense_config(path)
    scope = scope_of(cfg)
    own = build(cfg, scope).state_dict()
    conv = convert_state_dict(to_official(own, KINDS[scope]))
    assert conv.kind == KINDS[scope] and not conv.unknown
    assert sorted(conv.state_dict) == sorted(own)


def round_trip_cases() -> list:
    """One config here per model type (CrossFormer-S), a stock one for a type with none."""
    ours = [p for p in dense_configs() if '_crossformer_s_' in p]
    return [next((p for p in ours if p.startswith(prefix)), stock)
            for prefix, stock in STOCK.items()]


@pytest.mark.parametrize('path', round_trip_cases())
def test_dense_checkpoint_round_trip(path, tmp_path):
    """mmdet 2.x / mmseg 0.x files of our models convert, load strictly, compute the same."""
    cfg = dense_config(path)
    if cfg.model.get('test_cfg', {}).get('rpn'):   # few proposals: every head runs on them
        cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=10)
    scope = scope_of(cfg)
    kind = KINDS[scope]
    torch.manual_seed(0)
    model = build(cfg, scope)
    model.init_weights()
    official = to_official(model.state_dict(), kind)
    assert any(k.startswith('backbone.layers.') for k in official)
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    meta = {'CLASSES': ('a', 'b'), 'config': '...', 'epoch': 12}
    torch.save({'meta': meta, 'state_dict': official, 'optimizer': {}}, src)

    conv = convert_checkpoint(str(src), str(dst))
    assert conv.kind == kind and not conv.unknown
    fresh = build(cfg, scope)
    load_checkpoint(fresh, str(dst), strict=True)   # zero missing, zero unexpected
    assert torch.load(dst, weights_only=True)['meta']['dataset_meta'] == {'classes': ('a', 'b')}

    inputs = torch.randn(1, 3, 96, 128)
    expected = tensor_outputs(model, inputs)
    got = tensor_outputs(fresh, inputs)
    assert len(got) == len(expected) > 0
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# mmdet 2.x / mmseg 0.x parameter names, as their checkpoints hold them, that must survive as is.
MMDET2_NAMES = {
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py': [
        'neck.lateral_convs.0.conv.weight', 'neck.fpn_convs.4.conv.weight',
        'bbox_head.cls_convs.3.conv.weight', 'bbox_head.retina_cls.weight',
        'bbox_head.retina_reg.bias'],
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py': [
        'rpn_head.rpn_conv.weight', 'rpn_head.rpn_cls.weight', 'rpn_head.rpn_reg.bias',
        'roi_head.bbox_head.shared_fcs.1.weight', 'roi_head.bbox_head.fc_cls.weight',
        'roi_head.bbox_head.fc_reg.bias', 'roi_head.mask_head.convs.3.conv.weight',
        'roi_head.mask_head.upsample.weight', 'roi_head.mask_head.conv_logits.bias'],
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py': [
        'roi_head.bbox_head.2.fc_reg.weight', 'roi_head.mask_head.1.conv_logits.weight'],
    'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py': [
        'decode_head.psp_modules.3.1.conv.weight', 'decode_head.bottleneck.bn.running_var',
        'decode_head.lateral_convs.2.conv.weight', 'decode_head.fpn_bottleneck.conv.weight',
        'decode_head.conv_seg.weight', 'auxiliary_head.convs.0.bn.num_batches_tracked',
        'auxiliary_head.conv_seg.bias'],
    'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py': [
        'neck.lateral_convs.3.conv.bias', 'decode_head.scale_heads.3.2.conv.weight',
        'decode_head.scale_heads.0.0.bn.weight', 'decode_head.conv_seg.weight'],
}


@pytest.mark.parametrize('path', list(MMDET2_NAMES))
def test_mmdet2_mmseg0_head_names_kept(path):
    """The old names of these necks and heads are the new ones, so the tables keep them."""
    scope = path.split('::')[0]
    kind = KINDS[scope]
    own = build(dense_config(path), scope).state_dict()
    state = {key: torch.zeros(1) for key in MMDET2_NAMES[path]}
    state['backbone.patch_embed.norm.weight'] = torch.zeros(1)
    conv = convert_state_dict(state)
    assert conv.kind == kind and not conv.unknown
    assert set(MMDET2_NAMES[path]) <= set(own) and set(conv.kept) == set(MMDET2_NAMES[path])


# ----------------------------------------------------------------------------- refusals, CLI
@pytest.mark.parametrize('state,message', [
    ({'conv1.weight': torch.zeros(1), 'fc.weight': torch.zeros(1)}, 'Not an official'),
    ({'backbone.conv1.weight': torch.zeros(1), 'neck.x': torch.zeros(1),
      'bbox_head.y': torch.zeros(1)}, 'Not an official'),
    ({'backbone.patch_embed.norm.weight': torch.zeros(1)}, 'Not an official'),
    ({'backbone.stages.0.cel.norm.weight': torch.zeros(1)}, 'needs no conversion'),
    ({}, 'Not an official'),
])
def test_refuses_other_files(state, message):
    with pytest.raises(ValueError, match=message):
        detect_kind(state)


def test_refuses_unsafe_pickle(tmp_path):
    src = tmp_path / 'evil.pth'
    torch.save({'model': {'head.weight': torch.zeros(1)}, 'args': pickle.PickleError()}, src)
    with pytest.raises(pickle.UnpicklingError, match='PickleError'):
        read_checkpoint(str(src), progress=True)


def test_progress_on_large_files(tmp_path, monkeypatch):
    """Above the size threshold the file is read through a progress bar, same content."""
    src = tmp_path / 'big.pth'
    torch.save({'model': {'w': torch.arange(3 * 2**19, dtype=torch.float32)}}, src)  # 6 MiB
    bars = []

    class Bar:
        """Records the bar's length in MiB and how far it was advanced."""

        def __init__(self, task_num, file):
            self.task_num, self.completed = task_num, 0
            bars.append(self)

        def update(self):
            self.completed += 1

    monkeypatch.setattr('crossformer_mm.checkpoint.PROGRESS_MIN_BYTES', 2**20)
    monkeypatch.setattr('crossformer_mm.checkpoint.ProgressBar', Bar)
    state = read_checkpoint(str(src), progress=True)
    assert torch.equal(state['model']['w'], torch.arange(3 * 2**19, dtype=torch.float32))
    assert [(bar.task_num, bar.completed) for bar in bars] == [(6, 6)]
    # Below the threshold: no bar.
    monkeypatch.setattr('crossformer_mm.checkpoint.PROGRESS_MIN_BYTES', 7 * 2**20)
    read_checkpoint(str(src), progress=True)
    assert len(bars) == 1


def test_cli(tmp_path):
    golden = load_case('cls_tiny')
    src, dst = tmp_path / 'crossformer-t.pth', tmp_path / 'out' / 'converted.pth'
    torch.save({'model': golden['state_dict']}, src)
    tool = [sys.executable, str(ROOT / 'tools' / 'convert_checkpoint.py')]
    run = subprocess.run(tool + [str(src), str(dst)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 'official ImageNet classifier' in run.stdout
    assert 'layers.*.blocks.*.attn.pos.pos_proj.weight -> ' \
           'backbone.stages.*.blocks.*.attn.dpb.proj.weight' in run.stdout
    assert 'head.weight -> head.fc.weight  (x1)' in run.stdout
    assert os.path.isfile(dst)

    bad = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, bad)
    run = subprocess.run(tool + [str(bad), str(dst)], capture_output=True, text=True)
    assert run.returncode == 1 and 'Not an official CrossFormer checkpoint' in run.stderr
