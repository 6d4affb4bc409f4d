"""tools/setup_env.sh: a disk too full for a new environment is one line, before pip starts."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_full_disk_stops_the_set_up_with_one_line(tmp_path):
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    python = venv / 'bin' / 'python'   # an environment without torch: every check fails
    python.write_text('#!/bin/sh\nexit 1\n')
    python.chmod(0o755)
    env = dict(os.environ, NEED_GB='1000000000')
    done = subprocess.run(['bash', str(ROOT / 'tools' / 'setup_env.sh'), str(venv)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stdout == ''
    free, = done.stderr.splitlines()
    assert free.startswith(f'[setup] error: {venv}: ')
    assert free.endswith(' MB free on its disk, a new environment needs about 1000000000 GB')
