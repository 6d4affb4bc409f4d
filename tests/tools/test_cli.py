"""``--cfg-options`` as the tools read it (load_config of tools/cli.py): new keys merge as in
mmengine and take effect, likely typos get a warning, keys through a non-dict are refused; and
the tools' teardown joins the dataloader workers and destroys the process group."""
import os.path as osp

import pytest
from mmengine.registry import DATASETS, MODELS, init_default_scope
from mmengine.runner import Runner
from torch.utils.data import DataLoader

import cli
from shapes import CLASSES, make_shapes_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MASK_RCNN_3X = osp.join(ROOT, 'configs', 'mask_rcnn_crossformer_s_3x.py')
RETINANET = osp.join(ROOT, 'configs', 'retinanet_crossformerpp_s_1x.py')


def test_with_cp_and_indices_are_merged_and_take_effect(tmp_path, capsys):
    data_root = str(tmp_path) + '/'
    make_shapes_dataset(data_root, num_train=12, num_val=1, size=32)
    cfg = cli.load_config(MASK_RCNN_3X, {
        'model.backbone.with_cp': True,
        'train_dataloader.dataset.indices': 8,
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.dataset.ann_file': 'annotations/instances_train.json',
        'train_dataloader.dataset.metainfo': dict(classes=CLASSES),
    })
    assert capsys.readouterr().err == ''  # nothing looks like a typo
    init_default_scope(cfg.default_scope)
    backbone = MODELS.build(cfg.model.backbone)
    assert [stage.with_cp for stage in backbone.stages] == [True] * 4
    assert len(DATASETS.build(cfg.train_dataloader.dataset)) == 8
    assert cli.load_config(MASK_RCNN_3X).model.backbone.get('with_cp') is None


def test_new_top_level_keys_merge():
    cfg = cli.load_config(RETINANET, {'randomness.seed': 0, 'my_note': 'x'})
    assert cfg.randomness == dict(seed=0) and cfg.my_note == 'x'


def test_known_cfg_options_are_overridden():
    cfg = cli.load_config(RETINANET, {
        'model.backbone.group_size': 14,
        'train_dataloader.dataset.pipeline.2.scale': (666, 400),
    })
    assert cfg.model.backbone.group_size == 14
    assert cfg.train_dataloader.dataset.pipeline[2].scale == (666, 400)


@pytest.mark.parametrize('key, match', [
    ('model.backbone.group_sizes', "model.backbone has no 'group_sizes'; did you mean "
     "'group_size'?"),
    ('train_dataloder.batch_size', "the config has no 'train_dataloder'; did you mean "
     "'train_dataloader'?"),
    ('randomnes.seed', "the config has no 'randomnes'; did you mean 'randomness'?"),
])
def test_a_likely_typo_is_merged_with_a_warning(capsys, key, match):
    cfg = cli.load_config(RETINANET, {key: 7})
    assert capsys.readouterr().err == f'warning: --cfg-options adds {key!r}: {match}\n'
    node = cfg
    for part in key.split('.'):
        node = node[part]
    assert node == 7


def test_a_likely_typo_warns_on_the_first_process_only(capsys, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    cli.load_config(RETINANET, {'model.backbone.group_sizes': 7})
    assert capsys.readouterr().err == ''


SMALL_CONFIG = """
model = dict(backbone=dict(type='CrossFormer', arch='s', out_indices=(0, 1, 2, 3)))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4))
train_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'),
                                               dict(type='PackDetInputs')]))
"""


@pytest.mark.parametrize('key, err', [
    ('model.backbone.arch.x', "model.backbone.arch is str 's', not a dict"),
    ('optim_wrapper.optimizer.lr.x', 'optim_wrapper.optimizer.lr is float 0.0001, not a dict'),
    ('train_dataloader.dataset.pipeline.2.scale',
     'train_dataloader.dataset.pipeline is a list of 2: use an index 0..1'),
    ('train_dataloader.dataset.pipeline.type',
     'train_dataloader.dataset.pipeline is a list of 2: use an index 0..1'),
    ('model.backbone.out_indices.0',
     'model.backbone.out_indices is a tuple (0, 1, 2, 3): set it whole'),
])
def test_a_key_through_a_value_that_is_not_a_dict_is_refused(tmp_path, key, err):
    config = tmp_path / 'small.py'
    config.write_text(SMALL_CONFIG)
    with pytest.raises(cli.CommandLineError) as exc:
        cli.load_config(str(config), {key: 1})
    assert str(exc.value) == f'cannot set {key!r} in --cfg-options: {err}'
    cfg = cli.load_config(str(config), {'train_dataloader.dataset.pipeline.1.type': 'X'})
    assert cfg.train_dataloader.dataset.pipeline[1].type == 'X'


class _Workers:
    """Stands for a dataloader iterator with worker processes."""

    def __init__(self, log):
        self.log = log

    def _shutdown_workers(self):
        self.log.append(self)


class _Holder:

    def __init__(self, iterator):
        self._iterator = iterator


def test_run_joins_the_workers_even_when_training_fails(monkeypatch):
    log = []
    runner = Runner.__new__(Runner)
    train_workers, val_workers = _Workers(log), _Workers(log)
    train_loop = type('Loop', (), {})()
    train_loop.dataloader = _Holder(None)  # workers held by the infinite iterator instead
    train_loop.dataloader_iterator = _Holder(train_workers)
    val_loop = type('Loop', (), {})()
    val_loop.dataloader = _Holder(val_workers)
    runner._train_loop, runner._val_loop, runner._test_loop = train_loop, val_loop, dict()

    def train():
        raise RuntimeError('rank failed')

    runner.train = train
    monkeypatch.setattr(cli, 'build_runner', lambda cfg: runner)
    with pytest.raises(RuntimeError, match='rank failed'):
        cli.run(None, 'train')
    assert log == [train_workers, val_workers]


def test_persistent_workers_are_joined():
    loader = DataLoader(list(range(4)), batch_size=2, num_workers=1, persistent_workers=True)
    assert [batch.tolist() for batch in loader] == [[0, 1], [2, 3]]
    workers = loader._iterator._workers
    assert [w.is_alive() for w in workers] == [True]  # kept for the next epoch
    runner = Runner.__new__(Runner)
    runner._train_loop = runner._test_loop = None
    runner._val_loop = type('Loop', (), {'dataloader': loader})()
    cli.shut_down_workers(runner)
    assert [w.is_alive() for w in workers] == [False]
    assert [w.exitcode for w in workers] == [0]  # ended, not killed


def test_run_cli_destroys_the_process_group_after_success_and_command_line_errors(monkeypatch):
    destroyed = []
    monkeypatch.setattr(cli.torch_dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(cli.torch_dist, 'destroy_process_group', lambda: destroyed.append(1))
    cli.run_cli(lambda argv: None, [])
    assert destroyed == [1]

    def bad_input(argv):
        raise cli.CommandLineError('bad')

    with pytest.raises(SystemExit) as exc:
        cli.run_cli(bad_input, [])
    assert exc.value.code == 2 and destroyed == [1, 1]

    def rank_fails(argv):  # its peers may be waiting in a collective: leave the group alone
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        cli.run_cli(rank_fails, [])
    assert destroyed == [1, 1]
