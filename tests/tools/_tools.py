"""What the tool tests share: a tool's module, running its main as its command line does, and
the environment of a multi-process launch."""
import importlib.util
import os
import os.path as osp
import sys

import pytest

import cli

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def tool(name: str):
    """A fresh import of tools/<name>.py."""
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fails(capsys, name: str, *argv: str) -> str:
    """Run the tool, expect exit status 2, return its one-line error."""
    with pytest.raises(SystemExit) as exc:
        cli.run_cli(tool(name).main, list(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert 'Traceback' not in err
    return err


def dist_env() -> dict:
    """The environment of a tools/dist_*.sh run: no PORT (torchrun then binds a free port
    itself, so that runs side by side cannot collide), no GPU, and the interpreter that runs
    the tests (the scripts otherwise take the checkout's .venv, which a clone tested with
    ``make test VENV=...`` has not)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable)
    for key in ('PORT', 'NNODES', 'NODE_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(key, None)
    return env
