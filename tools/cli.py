"""What ``tools/train.py``, ``tools/test.py`` and ``tools/get_flops.py`` share.

The tools work for a config of any toolbox: the config's ``default_scope`` (mmdet, mmseg or
mmpretrain) decides whose registries build it. Errors in what the user typed (a config path
that does not exist, a ``--cfg-options`` key that leads into a number or a string) are raised
here as :class:`CommandLineError` so that the tools can report them in one line.
"""
import argparse
import ast
import difflib
import inspect
import os
import os.path as osp
import sys
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from crossformer_mm.datasets import DataFileError


class CommandLineError(ValueError):
    """Bad input on the command line, reported without a traceback."""


def add_common_args(parser: argparse.ArgumentParser, launcher: bool = True) -> None:
    """The config path and ``--cfg-options``, and ``--launcher`` / ``--local_rank``."""
    parser.add_argument('config', help='config file, e.g. configs/mask_rcnn_crossformer_s_1x.py')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
        help='override or add config entries, e.g. train_dataloader.batch_size=1 '
        'model.backbone.with_cp=True; a new key that looks like a typo of an existing one '
        'gets a warning')
    if launcher:
        parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                            default='none', help='job launcher')
        # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
        parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                            help=argparse.SUPPRESS)


def add_amp_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """``--amp [fp16|bf16]``: reduced precision, see :func:`amp_dtype`."""
    parser.add_argument(
        '--amp', nargs='?', const='auto', choices=('auto', 'fp16', 'bf16'),
        metavar='{fp16,bf16}', help=f'{what}: fp16 by default on CUDA, bf16 on CPU')


def amp_dtype(choice: str) -> str:
    """The dtype of ``--amp``: the one named, else fp16 on CUDA and bf16 on CPU."""
    if choice != 'auto':
        return choice
    return 'fp16' if torch.cuda.is_available() else 'bf16'


def set_reduced_precision(cfg: Config, dtype: str) -> None:
    """Have the config's model compute in ``dtype``: the CrossFormer backbone whole
    (``model.backbone.compute_dtype``), the neck's and heads' convolutions and linear layers one
    by one (``ReducedPrecisionHook``). Each returns float32, so what runs between them (norms,
    NMS, RoIAlign, losses: mmcv's CPU ops take float32 only) is unchanged."""
    backbone = cfg.model.get('backbone') or {}
    kind = backbone.get('type')
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', repr(kind))
    if name.split('.')[-1] != 'CrossFormer':
        raise CommandLineError(f'--amp {dtype} computes model.backbone in {dtype}, which needs a '
                               f'CrossFormer backbone; this config has {name}')
    backbone.compute_dtype = dtype
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='ReducedPrecisionHook', dtype=dtype)]


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config and merge ``--cfg-options`` as mmengine does (see :func:`check_key`)."""
    if not osp.isfile(path):
        raise CommandLineError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as err:
        raise CommandLineError(describe_syntax_error(path, err)) from None
    if cfg_options:
        tree = cfg.to_dict()
        for key in cfg_options:
            check_key(tree, key)
        cfg.merge_from_dict(cfg_options)
    return cfg


def describe_syntax_error(path: str, err: SyntaxError) -> str:
    """``FILE:LINE: ...`` for a syntax error in the config at ``path`` or its ``_base_`` files.

    mmengine parses each file without its name, so its error says ``File "<unknown>"``; the
    files are parsed again here, following relative ``_base_`` paths, to find the culprit.
    """
    found = _find_syntax_error(osp.abspath(path), set())
    if found is None:
        return f'{path}: {err}'
    filename, found = found
    line = (found.text or '').strip()
    return (f'{filename}:{found.lineno}: syntax error: {found.msg}'
            + (f': {line}' if line else ''))


def _find_syntax_error(path: str, seen: set) -> Optional[tuple]:
    """(file, SyntaxError) for the first file of the ``_base_`` chain that does not parse."""
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as err:
        return path, err
    for base in _relative_bases(tree):
        found = _find_syntax_error(osp.normpath(osp.join(osp.dirname(path), base)), seen)
        if found is not None:
            return found
    return None


def _relative_bases(tree: ast.Module) -> List[str]:
    """The ``_base_`` files of a parsed config that are paths (not ``mmdet::...``)."""
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets)):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return []
            bases = [bases] if isinstance(bases, str) else list(bases)
            return [b for b in bases if isinstance(b, str) and '::' not in b]
    return []


def check_key(tree: dict, key: str) -> None:
    """Refuse a dotted ``key`` that mmengine cannot merge into the config ``tree``; warn about a
    new key that is probably a typo of an existing one.

    New keys are fine (``model.backbone.with_cp``, ``train_dataloader.dataset.indices``): the
    class that receives them decides. What cannot be merged is a key through a value that is
    not a dict (``model.backbone.arch.x`` where ``arch`` is a string), an index past the end of
    a list, or an index into a tuple, which mmengine's merge cannot change in place.
    """
    parts = key.split('.')
    node: Any = tree
    for depth, part in enumerate(parts):
        where = '.'.join(parts[:depth]) or 'the config'
        if isinstance(node, dict):
            if part not in node:
                _warn_if_typo(key, where, part, node, top_level=depth == 0)
                return
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise CommandLineError(f'cannot set {key!r} in --cfg-options: {where} is '
                                   f'{_not_a_dict(node)}')


def _not_a_dict(node: Any) -> str:
    """What ``node`` is, for the error about a key that leads through it."""
    if isinstance(node, list):
        return f'a list of {len(node)}: use an index 0..{len(node) - 1}'
    if isinstance(node, tuple):
        return f'a tuple {node!r}: set it whole'
    return f'{type(node).__name__} {node!r}, not a dict'


def _warn_if_typo(key: str, where: str, part: str, node: dict, top_level: bool) -> None:
    """Print a warning (on the first process only) when ``part`` is close to a key of ``node``.

    At the top level the arguments of :class:`~mmengine.runner.Runner` count as existing keys,
    so ``randomness.seed`` passes silently and ``randomnes.seed`` is flagged.
    """
    known = set(node) | (_runner_args() if top_level else set())
    if part in known:
        return
    close = difflib.get_close_matches(part, sorted(known), n=1, cutoff=0.8)
    if close and os.environ.get('RANK', '0') == '0':
        print(f'warning: --cfg-options adds {key!r}: {where} has no {part!r}; '
              f'did you mean {close[0]!r}?', file=sys.stderr)


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


def run(cfg: Config, method: str) -> None:
    """Build the runner and call its ``train`` or ``test``; then, whether it worked or not,
    join the dataloader workers it keeps (see :func:`shut_down_workers`)."""
    runner = build_runner(cfg)
    try:
        getattr(runner, method)()
    finally:
        shut_down_workers(runner)


def shut_down_workers(runner: Runner) -> None:
    """Join the dataloader worker processes that outlive ``train()`` and ``test()``.

    Persistent workers (mmdet's dataset configs ask for them) and the iterator that
    ``IterBasedTrainLoop`` keeps over its infinite sampler would otherwise be left to the
    garbage collector and multiprocessing's exit handler, during interpreter shutdown.
    """
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        loop = getattr(runner, name, None)
        if loop is None or isinstance(loop, dict):  # never built
            continue
        for holder in (loop.dataloader, getattr(loop, 'dataloader_iterator', None)):
            iterator = getattr(holder, '_iterator', None)
            if hasattr(iterator, '_shutdown_workers'):
                iterator._shutdown_workers()


def checked_checkpoint(path: str) -> str:
    """The checkpoint for mmengine to read instead of ``path``, checked first: a URL fetched to
    torch's cache, which mmengine reads with safe loading (its own http loader would not), and
    a file that is missing or not a checkpoint a :class:`CommandLineError` saying what it is
    (see :func:`crossformer_mm.checkpoint.local_checkpoint`)."""
    from crossformer_mm.checkpoint import NotACheckpointError, local_checkpoint
    try:
        return local_checkpoint(path)
    except FileNotFoundError:
        raise CommandLineError(f'checkpoint file not found: {path}') from None
    except (NotACheckpointError, ConnectionError) as err:
        raise CommandLineError(str(err)) from None


def destroy_process_group() -> None:
    """Destroy the default process group if there is one.

    Left to the interpreter's exit, gloo's threads may outlive it and abort the process
    ("terminate called without an active exception"), and NCCL warns that it was not destroyed.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def run_cli(main, argv: Optional[Sequence[str]] = None) -> None:
    """Call ``main(argv)``; a :class:`CommandLineError` exits with ``error: ...``, status 2.

    When ``main`` returns or reports a command-line error (which every process meets alike),
    the process group it may have set up is destroyed. After any other exception it is left
    alone: the other processes may be inside a collective that destroying it would wait for;
    the exception alone makes the process, and the launcher, exit non-zero.
    """
    try:
        main(argv)
    except CommandLineError as exc:
        destroy_process_group()
        print(f'error: {exc}', file=sys.stderr)
        raise SystemExit(2) from None
    except DataFileError as exc:
        print(f'error: {data_file_message(exc)}', file=sys.stderr)
        raise SystemExit(1) from None
    destroy_process_group()


def data_file_message(exc: DataFileError) -> str:
    """The one line of a :class:`DataFileError`, also when a dataloader worker raised it: PyTorch
    then re-raises it with the worker's traceback as its message, the original line last."""
    last = str(exc).strip().splitlines()[-1]
    return last.split(f'{DataFileError.__name__}: ', 1)[-1]
