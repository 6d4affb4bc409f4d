"""The fields of a training recipe that decide its result, in one form for every toolbox.

:func:`normalize` takes a resolved config, either one of this repository (mmdet 3 / mmseg 1 /
mmpretrain 1 on mmengine) or an official CrossFormer one (mmdet 2 / mmseg 0.x, read with
mmengine's ``Config.fromfile``), and returns the same flat dict of fields for both, so that
``tools/official_recipes.py`` can record the official recipes (``configs/official_recipes.yml``)
and the tests can compare every config with its record. :func:`normalize_classification` does
the same for the official ImageNet code's yacs settings. The fields:

- ``optimizer`` (type, lr, betas, eps, weight decay), ``no_weight_decay`` (which kinds of
  parameters have none, decided on :data:`PARAMETERS` by the toolbox's rule), ``grad_clip``,
  ``amp``;
- ``backbone.arch``, ``backbone.group_size``, ``backbone.interval``,
  ``backbone.drop_path_rate``;
- ``schedule.length`` (epochs or iterations), ``schedule.warmup``, ``schedule.decay``;
- ``batch_size`` (all GPUs), ``train_pipeline``, ``test_pipeline``, ``test_multi_scale``
  (segmentation), the data augmentation of the classifiers;
- ``model.<part>`` for every part of a detector or segmentor but its backbone (neck, heads,
  train and test settings), and ``evaluation``.

mmdet 2 / mmseg 0.x names become today's: ``img_scale`` -> ``scale``, ``flip_ratio`` ->
``prob``, the official ``AlignResize`` -> ``Resize`` then ``ResizeToMultiple``, mmcv 1.x's
``lr_config`` -> warm-up and decay as mmengine's schedulers state them, and so on.
"""
import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .models.backbones.official_keys import official_to_ours

# The official backbone classes of the detection and segmentation code
# (``crossformer_factory.py``) and the variant each is.
OFFICIAL_BACKBONES = {'CrossFormer_S': 's', 'CrossFormer_B': 'b', 'CrossFormer_L': 'l',
                      'CrossFormer_S2': 'pp-s', 'CrossFormer_B2': 'pp-b'}

#: One parameter of each kind in a model: (kind, official name, module type, ndim). Its name in
#: this package follows from the official one (:func:`official_to_ours`); the heads' names are
#: the same in both. ``no_weight_decay`` lists the kinds a rule leaves without weight decay.
PARAMETERS = [
    ('CEL projection', 'backbone.patch_embed.projs.0.weight', 'conv', 4),
    ('CEL projection bias', 'backbone.patch_embed.projs.0.bias', 'conv', 1),
    ('CEL norm', 'backbone.patch_embed.norm.weight', 'norm', 1),
    ('block norm', 'backbone.layers.0.blocks.0.norm1.weight', 'norm', 1),
    ('attention linear', 'backbone.layers.0.blocks.0.attn.qkv.weight', 'linear', 2),
    ('attention linear bias', 'backbone.layers.0.blocks.0.attn.qkv.bias', 'linear', 1),
    ('DPB linear', 'backbone.layers.0.blocks.0.attn.pos.pos1.2.weight', 'linear', 2),
    ('DPB norm', 'backbone.layers.0.blocks.0.attn.pos.pos1.0.weight', 'norm', 1),
    ('MLP linear', 'backbone.layers.0.blocks.0.mlp.fc1.weight', 'linear', 2),
    ('ACL convolution', 'backbone.layers.2.blocks.2.ex_conv.weight', 'dwconv', 4),
    ('ACL norm', 'backbone.layers.2.blocks.2.ex_ln.weight', 'norm', 1),
    ('head convolution', 'decode_head.conv_seg.weight', 'conv', 4),
    ('head BN', 'decode_head.bottleneck.bn.weight', 'norm', 1),
    ('head bias', 'decode_head.conv_seg.bias', 'conv', 1),
]


def our_parameter_name(official: str) -> str:
    """A :data:`PARAMETERS` name as this package's models call it."""
    if not official.startswith('backbone.'):
        return official
    [name] = official_to_ours({official[len('backbone.'):]: None})
    return 'backbone.' + name


def plain(node: Any) -> Any:
    """A config node as YAML-able dicts, lists and numbers, without ``_scope_`` keys."""
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    return node


def _per_stage(value) -> List[int]:
    return [value] * 4 if isinstance(value, int) else list(value)


# --------------------------------------------------------------------------------- optimizer
def _optimizer(opt: dict) -> dict:
    """Type, lr, betas, eps and weight decay, torch's defaults filled in."""
    out = dict(type=opt['type'], lr=opt['lr'], weight_decay=opt.get('weight_decay', 0))
    if opt['type'] in ('Adam', 'AdamW'):
        out.update(betas=list(opt.get('betas', (0.9, 0.999))), eps=opt.get('eps', 1e-8))
    elif opt['type'] == 'SGD':
        out.update(momentum=opt.get('momentum', 0), nesterov=opt.get('nesterov', False))
    return out


def _paramwise_no_decay(paramwise: dict, ours: bool) -> List[str]:
    """The kinds of :data:`PARAMETERS` whose weight decay a paramwise config removes.

    The rule of mmengine's ``DefaultOptimWrapperConstructor`` (mmcv 1.x's
    ``DefaultOptimizerConstructor`` had the same): the longest of ``custom_keys`` found in a
    parameter's name sets its ``decay_mult``; other parameters get ``norm_decay_mult`` in norm
    layers, ``dwconv_decay_mult`` in depth-wise convolutions, ``bias_decay_mult`` for biases and
    ``flat_decay_mult`` for the other 1-D ones.
    """
    custom = paramwise.get('custom_keys', {})
    keys = sorted(sorted(custom), key=len, reverse=True)
    none = []
    for kind, name, module, ndim in PARAMETERS:
        full = our_parameter_name(name) if ours else name
        key = next((k for k in keys if k in full), None)
        if key is not None:
            mult = custom[key].get('decay_mult', 1.)
        elif module == 'norm':
            mult = paramwise.get('norm_decay_mult', 1.)
        elif module == 'dwconv':
            mult = paramwise.get('dwconv_decay_mult', 1.)
        elif full.endswith('.bias'):
            mult = paramwise.get('bias_decay_mult', 1.)
        else:
            mult = paramwise.get('flat_decay_mult', 1.) if ndim == 1 else 1.
        if mult == 0:
            none.append(kind)
    return none


# ---------------------------------------------------------------------------------- pipelines
_DROPPED = {'LoadImageFromFile', 'DefaultFormatBundle', 'Collect', 'ImageToTensor',
            'PackDetInputs', 'PackSegInputs', 'PackInputs'}
_RENAMED_KEYS = {'img_scale': 'scale', 'flip_ratio': 'prob'}


def _transform(t: dict, official: bool) -> List[dict]:
    t = {_RENAMED_KEYS.get(k, k): v for k, v in plain(t).items() if k != 'backend_args'}
    kind = t['type']
    if kind in _DROPPED:
        return []
    if kind == 'RandomResize':  # mmseg 1's name for mmseg 0.x's Resize with a ratio range
        t['type'] = kind = 'Resize'
    if kind == 'Resize':  # mmdet 2 / mmseg 0.x keep the ratio unless told, mmcv 2 does not
        t.setdefault('keep_ratio', official)
    if kind == 'AlignResize':  # the official op: Resize, then both sides up to a multiple
        divisor = t.pop('size_divisor', 32)
        return [dict(t, type='Resize'), dict(type='ResizeToMultiple', size_divisor=divisor)]
    if kind == 'LoadAnnotations':
        t.pop('poly2mask', None)
    if kind == 'RandomFlip':
        t.pop('direction', None)
    return [t]


def _pipeline(transforms: Sequence[dict], official: bool) -> List[dict]:
    return [out for t in transforms for out in _transform(t, official)]


def _preprocessing(cfg, train: bool) -> List[dict]:
    """Normalize and pad as a data preprocessor of mmengine does them, as transforms."""
    pre = cfg.model.data_preprocessor
    steps = [dict(type='Normalize', mean=list(pre.mean), std=list(pre.std),
                  to_rgb=pre.get('bgr_to_rgb', False))]
    if pre.get('pad_size_divisor', 1) > 1:
        steps.append(dict(type='Pad', size_divisor=pre.pad_size_divisor))
    elif train and pre.get('size') is not None:
        steps.append(dict(type='Pad', size=list(pre.size), pad_val=pre.get('pad_val', 0),
                          seg_pad_val=pre.get('seg_pad_val', 255)))
    return steps


def _official_test(test: Sequence[dict]) -> Tuple[List[dict], Optional[dict]]:
    """mmdet 2 / mmseg 0.x's MultiScaleFlipAug -> (single-scale pipeline, multi-scale test)."""
    out, multi_scale = [], None
    for t in test:
        if t['type'] != 'MultiScaleFlipAug':
            out += _transform(t, True)
            continue
        inner = [dict(s) for s in t['transforms'] if not (s['type'] == 'RandomFlip'
                                                           and not t.get('flip'))]
        for s in inner:
            if 'Resize' in s['type']:
                s['scale'] = t['img_scale']
        out += _pipeline(inner, True)
        if t.get('img_ratios'):
            multi_scale = dict(ratios=list(t['img_ratios']), flip=bool(t.get('flip')))
    return [t for t in out if t['type'] != 'Pad' or 'size_divisor' in t], multi_scale


def _our_multi_scale(cfg) -> Optional[dict]:
    """``tta_pipeline``'s scales as ratios of the test scale, and whether it flips."""
    if 'tta_pipeline' not in cfg or cfg.model.get('type') == 'ImageClassifier':
        return None
    [aug] = [t for t in cfg.tta_pipeline if t.type == 'TestTimeAug']
    test_scale = [t for t in cfg.test_pipeline if t.type == 'Resize'][0].scale
    ratios, flip = [], False
    for group in aug.transforms:
        for t in group:
            if t.type == 'Resize' and 'scale' in t:
                ratios.append(round(t.scale[0] / test_scale[0], 4))
            flip |= t.type == 'RandomFlip' and t.get('prob', 0) > 0
    return dict(ratios=ratios, flip=flip) if ratios else None


# ----------------------------------------------------------------------------------- schedule
def _official_schedule(cfg) -> dict:
    """mmcv 1.x's ``lr_config`` and runner length as mmengine's schedulers state them."""
    lr = cfg.lr_config
    runner = cfg.get('runner', {})
    if 'max_iters' in runner:
        length = dict(iters=runner['max_iters'])
    else:
        length = dict(epochs=runner.get('max_epochs', cfg.get('total_epochs')))
    warmup = None
    if lr.get('warmup'):
        if lr.warmup != 'linear':
            raise ValueError(f'lr_config warm-up {lr.warmup!r} is not one of the official ones')
        warmup = dict(iters=lr.warmup_iters, start_factor=lr.warmup_ratio)
    if lr.policy == 'step':
        decay = dict(type='step', milestones=list(lr.step), gamma=lr.get('gamma', 0.1))
    elif lr.policy == 'poly':  # mmcv 1.x decays over the whole run, warm-up included
        decay = dict(type='poly', power=lr.get('power', 1.), eta_min=lr.get('min_lr', 0.),
                     begin=0)
    else:
        raise ValueError(f'lr_config policy {lr.policy!r} is not one of the official ones')
    return dict(length=length, warmup=warmup, decay=decay)


def _our_schedule(cfg) -> dict:
    train = cfg.train_cfg
    by_epoch = 'max_epochs' in train
    length = dict(epochs=train.max_epochs) if by_epoch else dict(iters=train.max_iters)
    total = train.max_epochs if by_epoch else train.max_iters
    warmup = decay = None
    for s in cfg.param_scheduler:
        if s.type == 'LinearLR' and s.get('end_factor', 1.) == 1. and s.get('begin', 0) == 0:
            if warmup is not None:
                raise ValueError('two warm-ups in param_scheduler')
            if s.get('by_epoch', True) and not s.get('convert_to_iter_based', False):
                raise ValueError('an epoch-wise warm-up is not what any official recipe runs')
            warmup = dict(epochs=s.end) if s.get('by_epoch', True) else dict(iters=s.end)
            warmup['start_factor'] = s.start_factor
            continue
        if decay is not None or s.get('end', total) not in (total, math.inf):
            raise ValueError(f'{s.type}: one decay over the whole run expected, as the official '
                             'recipes decay')
        if s.type == 'MultiStepLR':
            decay = dict(type='step', milestones=list(s.milestones), gamma=s.get('gamma', 0.1))
        elif s.type == 'PolyLR':
            decay = dict(type='poly', power=s.get('power', 1.), eta_min=s.get('eta_min', 0.),
                         begin=s.get('begin', 0))
        elif s.type == 'CosineAnnealingLR':
            decay = dict(type='cosine', eta_min=s.get('eta_min', 0.))
        else:
            raise ValueError(f'scheduler {s.type} is not one the official recipes use')
    return dict(length=length, warmup=warmup, decay=decay)


# -------------------------------------------------------------------------------------- model
def _model_parts(model: dict) -> Dict[str, Any]:
    """Every part of a detector / segmentor but the backbone, mmdet 2.x names made today's."""
    model = plain(model)
    for key in ('backbone', 'data_preprocessor', 'pretrained', 'init_cfg'):
        model.pop(key, None)
    neck = model.get('neck')
    if neck and neck.get('type') == 'FPN':  # the inputs it uses, whatever start_level says
        neck['in_channels'] = neck['in_channels'][neck.pop('start_level', 0):]
    _modernize(model)
    return {f'model.{key}': value for key, value in model.items()}


def _modernize(node: Any) -> None:
    """mmdet < 2.12's RPN proposal keys -> mmdet 2.12+ / 3's; mmdet 3's explicit defaults."""
    if isinstance(node, list):
        for v in node:
            _modernize(v)
    if not isinstance(node, dict):
        return
    if 'nms_thr' in node:
        node['nms'] = dict(type='nms', iou_threshold=node.pop('nms_thr'))
        node['max_per_img'] = node.pop('max_num')
        node.pop('nms_post', None)
        node.pop('nms_across_levels', None)
    if node.get('sampler') == dict(type='PseudoSampler'):
        node.pop('sampler')  # what mmdet 2 used where a head configured no sampler
    for v in node.values():
        _modernize(v)


def _official_evaluation(cfg) -> dict:
    ev = cfg.evaluation
    metric = ev['metric']
    interval = ev.get('interval', 1)
    return dict(metric=sorted([metric] if isinstance(metric, str) else metric), interval=interval)


def _our_evaluation(cfg) -> dict:
    ev = cfg.val_evaluator
    metric = ev.get('metric', ev.get('iou_metrics'))
    metric = sorted([metric] if isinstance(metric, str) else metric)
    return dict(metric=metric, interval=cfg.train_cfg.get('val_interval', 1))


# -------------------------------------------------------------------------------- normalizing
def normalize(cfg, gpus: int = 8) -> Dict[str, Any]:
    """The recipe of a detection / segmentation / classification config of either generation.

    ``gpus``: how many GPUs the per-GPU batch of the config runs on.
    """
    if 'optimizer' in cfg and 'data' in cfg:
        fields = _official(cfg, gpus)
    else:
        fields = _ours(cfg, gpus)
    return {key: plain(value) for key, value in sorted(fields.items())}


def _backbone(arch: str, group_size, interval, drop_path_rate: float) -> dict:
    return {'backbone.arch': arch, 'backbone.group_size': _per_stage(group_size),
            'backbone.interval': _per_stage(interval), 'backbone.drop_path_rate': drop_path_rate}


def _schedule_fields(schedule: dict) -> dict:
    return {f'schedule.{k}': v for k, v in schedule.items()}


def _official(cfg, gpus: int) -> Dict[str, Any]:
    optimizer = dict(cfg.optimizer)
    paramwise = optimizer.pop('paramwise_cfg', None) or cfg.get('paramwise_cfg') or {}
    backbone = cfg.model.backbone
    grad_clip = (cfg.get('optimizer_config') or {}).get('grad_clip')
    test, multi_scale = _official_test(cfg.data.test.pipeline)
    train = cfg.data.train
    train = train.get('dataset', train)  # RepeatDataset
    model = dict(cfg.model)
    for key in ('train_cfg', 'test_cfg'):  # mmdet < 2.12 keeps them beside the model
        if key in cfg and key not in model:
            model[key] = cfg[key]
    fields = dict(
        optimizer=_optimizer(optimizer), no_weight_decay=_paramwise_no_decay(paramwise, False),
        grad_clip=_grad_clip(grad_clip), amp='fp16' in cfg,
        batch_size=cfg.data.samples_per_gpu * gpus, train_pipeline=_pipeline(train.pipeline, True),
        test_pipeline=test, evaluation=_official_evaluation(cfg),
        **_backbone(OFFICIAL_BACKBONES[backbone.type], backbone.group_size,
                    backbone.crs_interval, _OFFICIAL_DROP_PATH[backbone.type]),
        **_schedule_fields(_official_schedule(cfg)), **_model_parts(model))
    if multi_scale is not None or cfg.model.type == 'EncoderDecoder':
        fields['test_multi_scale'] = multi_scale
    return fields


#: The drop path rate each official dense backbone class sets (``crossformer_factory.py``).
_OFFICIAL_DROP_PATH = {'CrossFormer_S': 0.2, 'CrossFormer_B': 0.3, 'CrossFormer_L': 0.5,
                       'CrossFormer_S2': 0.2, 'CrossFormer_B2': 0.3}


def _grad_clip(clip: Optional[dict]) -> Optional[dict]:
    if not clip:
        return None
    return dict(max_norm=clip['max_norm'], norm_type=clip.get('norm_type', 2))


def _ours(cfg, gpus: int) -> Dict[str, Any]:
    wrapper = cfg.optim_wrapper
    backbone = cfg.model.backbone
    from .models import CrossFormer
    arch = CrossFormer.arch_zoo[CrossFormer.arch_aliases.get(backbone.arch, backbone.arch)]
    fields = dict(
        optimizer=_optimizer(wrapper.optimizer),
        no_weight_decay=_paramwise_no_decay(wrapper.get('paramwise_cfg') or {}, True),
        grad_clip=_grad_clip(wrapper.get('clip_grad')),
        amp=wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper',
        batch_size=cfg.train_dataloader.batch_size * gpus,
        **_backbone(backbone.arch, backbone.get('group_size', arch['group_size']),
                    backbone.get('interval', arch['interval']),
                    backbone.get('drop_path_rate', 0.1)),
        **_schedule_fields(_our_schedule(cfg)))
    if cfg.model.type == 'ImageClassifier':
        fields.update(_our_classification_data(cfg))
        return fields
    fields.update(
        train_pipeline=_pipeline(cfg.train_pipeline, False) + _preprocessing(cfg, True),
        test_pipeline=[t for t in _pipeline(cfg.test_pipeline, False)
                       if t['type'] != 'LoadAnnotations']
        + _preprocessing(cfg, False),
        evaluation=_our_evaluation(cfg), **_model_parts(cfg.model))
    if cfg.model.type == 'EncoderDecoder':
        fields['test_multi_scale'] = _our_multi_scale(cfg)
    return fields


# ----------------------------------------------------------------------------- classification
def _rand_augment(policy: str) -> dict:
    """timm's ``rand-m9-mstd0.5-inc1`` as (ops per image, magnitude, its std, increasing)."""
    parts = dict(n=2, m=None, mstd=0., increasing=False)
    for part in policy.split('-')[1:]:
        key, value = re.match(r'([a-z]+)([\d.]+)', part).groups()
        if key == 'inc':
            parts['increasing'] = bool(int(value))
        else:
            parts[key] = float(value) if key == 'mstd' else int(value)
    return parts


def normalize_classification(settings: dict, batch_per_gpu: int, gpus: int,
                             args: dict) -> Dict[str, Any]:
    """The official ImageNet recipe: yacs ``settings`` (a nested dict, as ``config.py`` builds it
    from its defaults and a yaml), ``main.py``'s ``args`` defaults that override them, and the
    README's batch per GPU and GPU count. The learning rates scale with the batch, per 512, as
    ``main.py`` scales them."""
    train, aug, model = settings['TRAIN'], settings['AUG'], settings['MODEL']
    cros = model['CROS']
    scale = batch_per_gpu * gpus / 512
    lr, warmup_lr, min_lr = (train['BASE_LR'] * scale, train['WARMUP_LR'] * scale,
                             train['MIN_LR'] * scale)
    opt = train['OPTIMIZER']
    if (opt['NAME'], train['LR_SCHEDULER']['NAME']) != ('adamw', 'cosine'):
        raise ValueError(f"{opt['NAME']} with a {train['LR_SCHEDULER']['NAME']} schedule is not "
                         'the official ImageNet recipe')
    arch = _classification_arch(cros)
    fields = dict(
        optimizer=dict(type='AdamW', lr=lr, weight_decay=train['WEIGHT_DECAY'],
                       betas=list(opt['BETAS']), eps=opt['EPS']),
        # optimizer.py: no weight decay for 1-D parameters, biases, `absolute_pos_embed` and
        # names with `relative_position_bias_table`, none of which CrossFormer has.
        no_weight_decay=[kind for kind, name, _, ndim in PARAMETERS
                         if ndim == 1 or name.endswith('.bias')],
        grad_clip=dict(max_norm=train['CLIP_GRAD'], norm_type=2) if train['CLIP_GRAD'] else None,
        amp=args['amp_opt_level'] == 'native', batch_size=batch_per_gpu * gpus,
        **_backbone(arch, cros['GROUP_SIZE'], cros['INTERVAL'],
                    model['DROP_PATH_RATE']),
        **_schedule_fields(dict(
            length=dict(epochs=train['EPOCHS']),
            warmup=dict(epochs=train['WARMUP_EPOCHS'], start_factor=warmup_lr / lr),
            decay=dict(type='cosine', eta_min=min_lr))),
        augmentation=dict(
            crop=dict(type='RandomResizedCrop', size=settings['DATA']['IMG_SIZE'],
                      interpolation=settings['DATA']['INTERPOLATION']),
            flip=0.5, rand_augment=_rand_augment(aug['AUTO_AUGMENT']),
            # timm's create_transform applies colour jitter only without an auto augment
            color_jitter=None if aug['AUTO_AUGMENT'] else aug['COLOR_JITTER'],
            random_erasing=dict(prob=aug['REPROB'], mode=aug['REMODE'],
                                count=aug['RECOUNT']),
            mixup=aug['MIXUP'], cutmix=aug['CUTMIX'], mix_prob=aug['MIXUP_PROB'],
            switch_prob=aug['MIXUP_SWITCH_PROB'], label_smoothing=model['LABEL_SMOOTHING']),
        # data/build.py: resize the short side to 256 / 224 of the size, then centre crop
        test_pipeline=[dict(type='ResizeEdge', scale=int(256 / 224 * settings['DATA']['IMG_SIZE']),
                            edge='short', interpolation=settings['DATA']['INTERPOLATION']),
                       dict(type='CenterCrop', crop_size=settings['DATA']['IMG_SIZE'])])
    return {key: plain(value) for key, value in sorted(fields.items())}


def _classification_arch(cros: dict) -> str:
    from .models import CrossFormer
    for name, arch in CrossFormer.arch_zoo.items():
        if (arch['embed_dims'], arch['depths'], arch['num_heads'], arch['with_acl']) == \
                (cros['EMBED_DIM'], list(cros['DEPTHS']), list(cros['NUM_HEADS']),
                 bool(cros.get('USE_ACL', False))):
            return name
    raise ValueError(f'no CrossFormer variant has the official setting {cros}')


def _our_classification_data(cfg) -> dict:
    """mmpretrain's pipeline and batch augments in :func:`normalize_classification`'s terms."""
    by_type = {t.type: t for t in cfg.train_pipeline}
    crop, rand, erase = (by_type['RandomResizedCrop'], by_type['RandAugment'],
                         by_type['RandomErasing'])
    if (rand.policies, rand.total_level) != ('timm_increasing', 10):
        raise ValueError("RandAugment: only timm's increasing policies (level 10) are compared")
    mixes = {a.type: a.alpha for a in cfg.model.train_cfg.augments}
    loss = cfg.model.head.loss
    test = {t.type: t for t in cfg.test_pipeline}
    return dict(
        augmentation=dict(
            crop=dict(type='RandomResizedCrop', size=crop.scale,
                      interpolation=crop.interpolation),
            flip=by_type['RandomFlip'].prob,
            rand_augment=dict(n=rand.num_policies, m=rand.magnitude_level,
                              mstd=rand.magnitude_std, increasing=True),
            color_jitter=by_type['ColorJitter'].brightness if 'ColorJitter' in by_type else None,
            random_erasing=dict(prob=erase.erase_prob,
                                mode={'rand': 'pixel'}.get(erase.mode, erase.mode), count=1),
            mixup=mixes.get('Mixup', 0.), cutmix=mixes.get('CutMix', 0.), mix_prob=1.0,
            # mmpretrain picks one of the batch augments uniformly
            switch_prob=1 / len(mixes) if len(mixes) == 2 else 0.,
            label_smoothing=loss.label_smooth_val if loss.type == 'LabelSmoothLoss' else 0.),
        test_pipeline=[dict(type='ResizeEdge', scale=test['ResizeEdge'].scale,
                            edge=test['ResizeEdge'].edge,
                            interpolation=test['ResizeEdge'].interpolation),
                       dict(type='CenterCrop', crop_size=test['CenterCrop'].crop_size)])

