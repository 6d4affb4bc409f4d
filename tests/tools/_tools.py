"""What the tool tests share: a tool's module, and running its main as its command line does."""
import importlib.util
import os.path as osp

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
