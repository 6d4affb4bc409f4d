"""tests/conftest.py: what pytest's main process does before pytest-xdist starts the workers."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_the_main_process_writes_yapfs_grammar_cache_before_the_workers(tmp_path):
    """yapf renames its grammar cache into place before flushing it (google/yapf#1164), so the
    conftest writes it before any worker imports yapf; with a cold cache it is there, whole."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    subprocess.run([sys.executable, '-c', 'import conftest'], cwd=TESTS, env=env, check=True)
    grammars = sorted(p.name.split('-')[0] for p in (tmp_path / 'YAPF').rglob('*.pickle'))
    assert grammars == ['Grammar', 'PatternGrammar']
    for cache in (tmp_path / 'YAPF').rglob('*.pickle'):
        assert pickle.loads(cache.read_bytes())['start'] == 256
