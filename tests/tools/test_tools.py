"""tools/train.py, test.py and get_flops.py: options, and one-line errors for bad input."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

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


def test_get_flops_prints_params_and_flops(capsys):
    cli.run_cli(tool('get_flops').main, [RETINANET, '--shape', '64', '96'])
    printed = dict(line.split(': ', 1) for line in capsys.readouterr().out.splitlines()
                   if ': ' in line)
    assert printed['Input shape'] == '(3, 64, 96)'
    # The whole detector's parameters, as the model zoo states them.
    value, unit = printed['Params'].split()
    assert (float(value), unit) == (round(33044904 / 1e6, 2), 'M')
    # At 64 x 96 every LDA group covers its map: both counts agree.
    executed, published = (printed[key].split() for key in
                           ('Flops', 'Flops, LDA as the papers count it'))
    assert executed == published and executed[1] == 'G' and 1 < float(executed[0]) < 2


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
