"""Reduced precision in every toolbox: ``model.backbone.compute_dtype`` in a config (what the
Inferencers build from), ``compute_layers_in`` for the neck and heads, and ``--amp`` of
tools/test.py and tools/train.py (both). The backbone and each layer after it compute in bf16
and hand on float32, so mmcv's float32-only CPU ops (NMS, RoIAlign) run and the scores stay
within bf16's rounding of float32's."""
import importlib
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

import cli
from _tools import fails, tool
from crossformer_mm.engine import compute_layers_in, reduced_precision
from crossformer_mm.models.backbones import precision
from shapes import data_root_options, make_shapes_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET = 'configs/demo/mask-rcnn_crossformer-demo_shapes.py'
SEG = 'configs/demo/fpn_crossformer-demo_shapes.py'
CLS = 'configs/crossformer_t_in1k.py'
#: CrossFormer-T's widths (its head's), one or two blocks a stage.
TINY_CLS = dict(embed_dims=64, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16], group_size=7,
                interval=[8, 4, 2, 1], with_acl=False)


@pytest.fixture
def autocasts(monkeypatch):
    """The dtypes the backbone autocasts to, call by call, on a CPU taken to have bf16
    instructions (the warning for one without is tested with the backbone)."""
    monkeypatch.setattr(precision, 'cpu_flags', lambda: frozenset({'avx512_bf16'}))
    calls = []
    original = precision.autocast
    monkeypatch.setattr(precision, 'autocast',
                        lambda device, dtype: calls.append(dtype) or original(device, dtype))
    return calls


@pytest.fixture
def layer_autocasts(monkeypatch):
    """The dtypes the neck's and heads' layers autocast to (compute_layers_in), call by call."""
    calls = []
    original = reduced_precision.autocast
    monkeypatch.setattr(reduced_precision, 'autocast',
                        lambda device, dtype: calls.append(dtype) or original(device, dtype))
    return calls


def build(config: str, compute_dtype, **backbone):
    """The model of ``config`` with seeded random weights, in eval mode."""
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.model.backbone.update(compute_dtype=compute_dtype, **backbone)
    cfg.model.backbone.pop('init_cfg', None)
    init_default_scope(cfg.default_scope)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def neck_inputs(model) -> list:
    """The dtypes of the maps the neck gets, call by call."""
    seen = []
    model.neck.register_forward_pre_hook(
        lambda module, args: seen.append({t.dtype for t in args[0]}))
    return seen


def assert_close_not_equal(low, ref, tolerance: float = 0.05) -> None:
    """Within ``tolerance`` of float32's largest value, and not identical (bf16 ran)."""
    assert low.dtype == ref.dtype == torch.float32
    err = ((low - ref).abs().max() / ref.abs().max()).item()
    assert 0 < err < tolerance, err


@pytest.mark.parametrize('config, backbone, shape', [
    (SEG, {}, (2, 3, 64, 96)),
    (CLS, dict(arch=TINY_CLS), (2, 3, 64, 64)),
])
def test_segmentor_and_classifier(autocasts, config, backbone, shape):
    x = torch.randn(shape)
    with torch.no_grad():
        ref = build(config, None, **backbone)(x, mode='tensor')
        model = build(config, 'bf16', **backbone)
        dtypes = neck_inputs(model)
        low = model(x, mode='tensor')
    assert autocasts == [torch.bfloat16] and dtypes == [{torch.float32}]
    assert_close_not_equal(low, ref)   # seg logits / class scores


def test_detector_heads_get_float32_and_nms_runs(autocasts, layer_autocasts):
    from mmdet.structures import DetDataSample
    x = torch.randn(2, 3, 64, 96)
    samples = [DetDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96),
                                           scale_factor=(1., 1.))) for _ in range(2)]
    with torch.no_grad():
        ref = build(DET, None)
        ref_rpn = ref.rpn_head(ref.extract_feat(x))
        model = build(DET, 'bf16')
        dtypes = neck_inputs(model)
        rpn_conv = []   # registered before compute_layers_in's hooks: sees the bf16 output
        model.rpn_head.rpn_conv.register_forward_hook(lambda m, a, out: rpn_conv.append(out.dtype))
        assert compute_layers_in(model, 'bf16') > 0
        rpn = model.rpn_head(model.extract_feat(x))
        # NMS (RPN and RoI head) and RoIAlign: float32 only on CPU.
        results = model.predict(x, samples)
    assert autocasts == [torch.bfloat16] * 2 and dtypes == [{torch.float32}] * 2
    assert set(layer_autocasts) == {torch.bfloat16} and set(rpn_conv) == {torch.bfloat16}
    for low, ref_level in zip(sum(rpn, []), sum(ref_rpn, [])):  # RPN scores and boxes
        assert_close_not_equal(low, ref_level)
    for result in results:
        assert result.pred_instances.scores.dtype == torch.float32
        assert len(result.pred_instances) > 0


def test_inferencer_takes_it_from_the_config(autocasts, layer_autocasts):
    """The backbone's dtype from the config; the neck's and heads' from compute_layers_in."""
    from mmdet.apis import DetInferencer
    cfg = Config.fromfile(osp.join(ROOT, DET))
    cfg.model.backbone.compute_dtype = 'bfloat16'
    inferencer = DetInferencer(model=cfg, weights=None, device='cpu', show_progress=False)
    compute_layers_in(inferencer.model, 'bfloat16')
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    result = inferencer(image, return_datasamples=True)['predictions'][0]
    assert autocasts == [torch.bfloat16] and set(layer_autocasts) == {torch.bfloat16}
    assert result.pred_instances.scores.dtype == torch.float32


@pytest.fixture(scope='module')
def data_options(tmp_path_factory):
    data_root = str(tmp_path_factory.mktemp('shapes')) + '/'
    make_shapes_dataset(data_root, num_train=2, num_val=2, size=64)
    options = data_root_options(Config.fromfile(osp.join(ROOT, DET)), data_root)
    options.update({'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
                    'train_dataloader.persistent_workers': False,
                    'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
                    'default_hooks.logger.interval': 1,
                    'train_cfg.max_iters': 1, 'train_cfg.val_interval': 10})
    return [f'{k}={v}' for k, v in options.items()]


def test_train_and_test_tools_amp_on_cpu(autocasts, layer_autocasts, data_options, tmp_path,
                                        monkeypatch):
    """The demo Mask R-CNN trains and tests with ``--amp`` on CPU: bf16 in the backbone and in
    the neck's and heads' layers."""
    monkeypatch.setattr(cli.torch.cuda, 'is_available', lambda: False)
    cli.run_cli(tool('train').main, [DET, '--amp', '--work-dir', str(tmp_path),
                                     '--cfg-options', *data_options])
    assert autocasts == [torch.bfloat16] * 2  # one training step, validation at the end
    assert set(layer_autocasts) == {torch.bfloat16}
    trained = len(layer_autocasts)
    checkpoint = tmp_path / 'iter_1.pth'
    cli.run_cli(tool('test').main, [DET, str(checkpoint), '--amp', '--work-dir', str(tmp_path),
                                    '--cfg-options', *data_options])
    assert autocasts == [torch.bfloat16] * 3  # and the test: one batch of 2 val images
    assert len(layer_autocasts) > trained


def test_fp16_training_needs_cuda(capsys, monkeypatch):
    monkeypatch.setattr(cli.torch.cuda, 'is_available', lambda: False)
    assert fails(capsys, 'train', DET, '--amp', 'fp16') == \
        'error: --amp fp16 needs a CUDA device (loss scaling); on CPU use --amp bf16'


def test_amp_defaults_and_backbones():
    assert cli.amp_dtype('fp16') == 'fp16' and cli.amp_dtype('bf16') == 'bf16'
    assert cli.amp_dtype('auto') == ('fp16' if torch.cuda.is_available() else 'bf16')
    cfg = Config(dict(model=dict(backbone=dict(type='CrossFormer'))))
    cli.set_reduced_precision(cfg, 'bf16')
    assert cfg.model.backbone.compute_dtype == 'bf16'
    assert cfg.custom_hooks == [dict(type='ReducedPrecisionHook', dtype='bf16')]
    with pytest.raises(cli.CommandLineError, match='^--amp bf16 computes model.backbone in '
                       'bf16, which needs a CrossFormer backbone; this config has ResNet$'):
        cli.set_reduced_precision(Config(dict(model=dict(backbone=dict(type='ResNet')))),
                                  'bf16')
