"""What ``tools/train.py``, ``tools/test.py`` and ``tools/get_flops.py`` share.

The tools work for a config of any toolbox: the config's ``default_scope`` (mmdet, mmseg or
mmpretrain) decides whose registries build it. Errors in what the user typed (a config path
that does not exist, a ``--cfg-options`` key the config does not have) are raised here as
:class:`CommandLineError` so that the tools can report them in one line.
"""
import argparse
import inspect
import os
import os.path as osp
import sys
from typing import Any, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.runner import Runner


class CommandLineError(ValueError):
    """Bad input on the command line, reported without a traceback."""


def add_common_args(parser: argparse.ArgumentParser, launcher: bool = True) -> None:
    """The config path and ``--cfg-options``, and ``--launcher`` / ``--local_rank``."""
    parser.add_argument('config', help='config file, e.g. configs/mask_rcnn_crossformer_s_1x.py')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
        help='override config entries, e.g. train_dataloader.batch_size=1; every key must '
        'already exist in the config (except Runner arguments such as randomness.seed)')
    if launcher:
        parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                            default='none', help='job launcher')
        # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
        parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                            help=argparse.SUPPRESS)


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config and apply ``--cfg-options``, refusing keys the config does not have."""
    if not osp.isfile(path):
        raise CommandLineError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        for key in cfg_options:
            check_key(cfg, key)
        cfg.merge_from_dict(cfg_options)
    return cfg


def check_key(cfg: Config, key: str) -> None:
    """Raise :class:`CommandLineError` unless the dotted ``key`` names an entry of ``cfg``.

    A top-level key that the config leaves out but :class:`~mmengine.runner.Runner` accepts
    (``randomness``, ``load_from``, ...) may be set with its sub-keys.
    """
    parts = key.split('.')
    if parts[0] not in cfg and parts[0] in _runner_args():
        return
    node: Any = cfg.to_dict()
    for depth, part in enumerate(parts):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            where = '.'.join(parts[:depth]) or 'the config'
            choices = (sorted(node) if isinstance(node, dict) else
                       f'indices 0..{len(node) - 1}' if isinstance(node, (list, tuple)) else
                       f'nothing: it is {type(node).__name__} {node!r}')
            raise CommandLineError(
                f'unknown key {key!r} in --cfg-options: {where} has no {part!r} '
                f'(it has {choices})')


def _runner_args() -> set:
    return set(inspect.signature(Runner.__init__).parameters) - {'self'}


def setup_launcher(cfg: Config, launcher: str, local_rank: int = 0) -> None:
    """Record the launcher; on a machine without CUDA, run distributed jobs over gloo on CPU.

    mmengine would call ``torch.cuda.set_device`` and wrap the model in a DDP bound to a GPU,
    so without CUDA the process group is set up here and DDP gets no device.
    """
    cfg.launcher = launcher
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
    if launcher == 'none' or torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')


def set_work_dir(cfg: Config, work_dir: Optional[str], config_path: str) -> None:
    """``--work-dir``, else the config's own, else ``work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config) -> Runner:
    """The config's ``runner_type`` if it names one, else mmengine's Runner."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    from mmengine.registry import RUNNERS
    return RUNNERS.build(cfg)


def run_cli(main, argv: Optional[Sequence[str]] = None) -> None:
    """Call ``main(argv)``; a :class:`CommandLineError` exits with ``error: ...``, status 2."""
    try:
        main(argv)
    except CommandLineError as exc:
        print(f'error: {exc}', file=sys.stderr)
        raise SystemExit(2) from None
