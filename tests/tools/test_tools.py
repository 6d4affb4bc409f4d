"""tools/train.py, test.py, get_flops.py and fold_dpb.py: options, and one-line errors for bad
input."""
import os.path as osp
import re
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

import cli
from _tools import fails, tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RETINANET = osp.join(ROOT, 'configs', 'retinanet_crossformerpp_s_1x.py')


@pytest.mark.parametrize('name, argv', [('train', ()), ('test', ('model.pth', )),
                                        ('get_flops', ())])
def test_missing_config(capsys, name, argv):
    assert fails(capsys, name, 'configs/nope.py', *argv) == \
        'error: config file not found: configs/nope.py'


def test_cfg_option_through_a_value_that_is_not_a_dict(capsys):
    err = fails(capsys, 'train', RETINANET, '--cfg-options', 'optim_wrapper.optimizer.lr.x=1')
    assert err == ("error: cannot set 'optim_wrapper.optimizer.lr.x' in --cfg-options: "
                   "optim_wrapper.optimizer.lr is float 0.0001, not a dict")


def test_cfg_option_typo_warns_then_fails_where_it_is_used(capsys):
    with pytest.raises(TypeError, match="unexpected keyword argument 'group_sizes'"):
        cli.run_cli(tool('get_flops').main, [RETINANET, '--shape', '64', '--cfg-options',
                                             'model.backbone.group_sizes=7'])
    assert capsys.readouterr().err.splitlines()[0] == (
        "warning: --cfg-options adds 'model.backbone.group_sizes': model.backbone has no "
        "'group_sizes'; did you mean 'group_size'?")


@pytest.mark.parametrize('shape', [['0', '800'], ['1280', '800', '3'], ['-5']])
def test_bad_shape(capsys, shape):
    err = fails(capsys, 'get_flops', RETINANET, '--shape', *shape)
    assert err == ('error: --shape takes one or two positive integers (H W), got '
                   + ' '.join(shape))


def test_shape_that_is_not_a_number(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.run_cli(tool('get_flops').main, [RETINANET, '--shape', '1280x800'])
    assert exc.value.code == 2
    assert "argument --shape: invalid int value: '1280x800'" in capsys.readouterr().err


def test_get_flops_prints_params_and_flops(capsys, monkeypatch):
    """count_complexity of the whole detector at the shape, as printed (in G and M, 2 digits)."""
    get_flops = tool('get_flops')
    counted, count_complexity = [], get_flops.count_complexity

    def count(model, shape):
        counted.append((shape, count_complexity(model, shape)))
        return counted[-1][1]

    monkeypatch.setattr(get_flops, 'count_complexity', count)
    cli.run_cli(get_flops.main, [RETINANET, '--shape', '64', '96'])
    [(shape, (params, flops, published))] = counted
    # The whole detector's parameters, as the model zoo states them.
    assert (shape, params) == ((64, 96), 33044904)
    printed = dict(line.split(': ', 1) for line in capsys.readouterr().out.splitlines()
                   if ': ' in line)
    assert printed == {'Input shape': '(3, 64, 96)', 'Flops': f'{flops / 1e9:.2f} G',
                       'Flops, LDA as the papers count it': f'{published / 1e9:.2f} G',
                       'Params': '33.04 M'}


def test_fold_dpb_compares_and_times_the_folded_model(tmp_path, monkeypatch, capsys):
    """tools/fold_dpb.py with a checkpoint of the demo segmentor: folded features equal."""
    from mmseg.registry import MODELS
    config = osp.join(ROOT, 'configs', 'demo', 'fpn_crossformer-demo_shapes.py')
    init_default_scope('mmseg')
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(Config.fromfile(config).model)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'fpn.pth')
    monkeypatch.setattr(sys, 'argv', ['fold_dpb.py', config, '--checkpoint',
                                      str(tmp_path / 'fpn.pth'), '--shape', '64', '96',
                                      '--runs', '1', '--device', 'cpu'])
    tool('fold_dpb').main()
    out = capsys.readouterr().out.splitlines()
    compared = next(line for line in out if line.startswith(config))
    assert re.fullmatch(rf'{re.escape(config)} at 1x3x64x96 on cpu \(\d+ threads\): '
                        r'max \|folded - DPB\| = (.*)', compared)
    assert float(compared.rsplit(' = ', 1)[1]) < 1e-5
    assert re.fullmatch(r'CPU time per forward: DPB [\d.]+ ms, folded [\d.]+ ms, '
                        r'speed-up [\d.]+x', out[-1]), out[-1]


def test_auto_scale_lr_needs_a_base_batch_size(capsys, tmp_path):
    config = tmp_path / 'no_base.py'
    config.write_text(f'_base_ = {RETINANET!r}\n'
                      'auto_scale_lr = dict(_delete_=True, enable=False)\n')
    assert fails(capsys, 'train', str(config), '--auto-scale-lr') == (
        'error: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')


def test_default_shapes():
    get_flops = tool('get_flops')
    assert get_flops.input_shape(None, 'mmdet') == (1280, 800)
    assert get_flops.input_shape([800], 'mmdet') == (800, 800)
    assert get_flops.input_shape([512, 1024], 'mmseg') == (512, 1024)


def test_test_tool_needs_an_existing_checkpoint(capsys):
    assert fails(capsys, 'test', RETINANET, 'nope.pth') == \
        'error: checkpoint file not found: nope.pth'


def test_launcher_without_cuda_uses_gloo(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(cli.torch_dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(cli.torch_dist, 'init_process_group', lambda **kw: calls.append(kw))
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    cli.setup_launcher(cfg, 'pytorch')
    assert cfg.launcher == 'pytorch' and cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False, find_unused_parameters=False)
    assert calls == [dict(backend='gloo')]

    single = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    cli.setup_launcher(single, 'none')
    assert single.env_cfg.dist_cfg.backend == 'nccl' and 'model_wrapper_cfg' not in single


def test_work_dir_defaults_to_the_config_name():
    cfg = Config(dict())
    cli.set_work_dir(cfg, None, 'configs/mask_rcnn_crossformer_s_1x.py')
    assert cfg.work_dir == './work_dirs/mask_rcnn_crossformer_s_1x'
    cli.set_work_dir(cfg, '/tmp/x', 'configs/mask_rcnn_crossformer_s_1x.py')
    assert cfg.work_dir == '/tmp/x'
