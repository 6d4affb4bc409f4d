"""Fixtures shared by the test modules, and the tools' modules importable as the tools import
them (``tools/`` first on the path, as when a tool runs)."""
import os
import random
import sys
import types
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

TOOLS = str(Path(__file__).resolve().parents[1] / 'tools')
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)


def _share_the_cores_among_workers() -> None:
    """Under pytest-xdist (``make test`` runs a worker per core), each worker and every process
    it starts gets its share of the cores: torch's threads and ``OMP_NUM_THREADS``, which the
    tools' subprocesses read. Workers that each took every core would oversubscribe them."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
        threads = max(1, (cores or 1) // workers)
        os.environ['OMP_NUM_THREADS'] = str(threads)
        torch.set_num_threads(threads)


_share_the_cores_among_workers()


def _write_yapf_grammar_cache() -> None:
    """Import yapf (mmengine's config imports it) once here, in pytest's main process, before
    pytest-xdist starts its workers. On its first import in an environment yapf writes its grammar
    cache under ``~/.cache/YAPF`` and renames each file into place before it has flushed it
    (google/yapf#1164): a worker that imports yapf in that moment reads an empty file and fails
    with ``EOFError: Ran out of input`` (one CI run did)."""
    import yapf  # noqa: F401


_write_yapf_grammar_cache()

#: The yacs config that :func:`official_imagenet_checkpoint` stores, as plain dicts.
OFFICIAL_CONFIG = {'MODEL': {'TYPE': 'cross-scale', 'NAME': 'crossformer_tiny'},
                   'TRAIN': {'BASE_LR': 1e-3, 'EPOCHS': 300}, 'AMP_OPT_LEVEL': 'O1'}


def _yacs_cfgnode() -> type:
    """A ``yacs.config.CfgNode`` that pickles byte for byte as yacs 0.1.8's (checked against the
    real package); yacs itself is not needed."""

    class CfgNode(dict):

        def __init__(self, init_dict=None):
            super().__init__(init_dict or {})
            self.__dict__.update({'__immutable__': False, '__deprecated_keys__': set(),
                                  '__renamed_keys__': {}, '__new_allowed__': False})

    CfgNode.__module__, CfgNode.__qualname__ = 'yacs.config', 'CfgNode'
    return CfgNode


@pytest.fixture
def official_imagenet_checkpoint(monkeypatch) -> Callable[[dict], dict]:
    """Builds what the official ImageNet training code saves (Swin's ``save_checkpoint``) around a
    state dict: optimizer and scheduler states and the run's yacs config. ``yacs.config`` is
    importable while the test runs, for ``torch.save``."""
    CfgNode = _yacs_cfgnode()
    module = types.ModuleType('yacs.config')
    module.CfgNode = CfgNode
    monkeypatch.setitem(sys.modules, 'yacs', types.ModuleType('yacs'))
    monkeypatch.setitem(sys.modules, 'yacs.config', module)

    def node(items: dict) -> CfgNode:
        return CfgNode({k: node(v) if isinstance(v, dict) else v for k, v in items.items()})

    def build(model: dict) -> dict:
        config = node(OFFICIAL_CONFIG)
        config.__dict__['__immutable__'] = True  # config.freeze()
        return {'model': model, 'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-5}]},
                'lr_scheduler': {'t_initial': 300}, 'max_accuracy': 81.5, 'epoch': 299,
                'config': config}

    return build


@pytest.fixture(autouse=True)
def _same_start_for_every_test():
    """Every test starts from seed 0 and the process's thread count, whatever ran before it (a
    tool's ``--threads 1`` sets the count for the whole process)."""
    threads = torch.get_num_threads()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(items: list) -> None:
    """The tests marked ``slow`` first: behind them pytest-xdist's work stealing balances the
    quick ones across the workers, where a long test that started last would run alone."""
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)
