"""The wheel carries the model index and the configs where ``mim search crossformer_mm`` reads
them (``crossformer_mm/.mim``), and the index lists every config with its Params and FLOPs."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from modelindex.load_model_index import load

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(out), str(ROOT)], check=True)
    wheel, = out.glob('crossformer_mm-*.whl')
    return wheel


def test_wheel_ships_the_model_index(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / 'site')
    configs = {path.relative_to(ROOT).as_posix() for path in (ROOT / 'configs').rglob('*')
               if path.is_file()}
    assert {f'crossformer_mm/.mim/{name}' for name in configs} <= names
    index = load(str(tmp_path / 'site' / 'crossformer_mm' / '.mim' / 'model-index.yml'))
    models = {model.name: model for model in index.models}
    assert set(models) == {path.stem for path in (ROOT / 'configs').glob('*.py')}
    retinanet = models['retinanet_crossformer_s_1x']
    assert (retinanet.metadata.parameters, retinanet.metadata.flops) == \
        (40824958, 252299650136)
    assert (tmp_path / 'site' / 'crossformer_mm' / '.mim' / retinanet.config).is_file()


# mim's own lookup (openmim 0.3.9, mim/utils/utils.py get_installed_path and
# mim/commands/search.py load_metadata_from_local): the distribution's location, then
# <location>/crossformer_mm/.mim/model-index.yml. An editable install's location is
# site-packages, which holds no crossformer_mm/ (the README says so).
MIM_LOOKUP = """
import os.path as osp, pkg_resources
location = pkg_resources.get_distribution('crossformer_mm').location
print(osp.isfile(osp.join(location, 'crossformer_mm', '.mim', 'model-index.yml')))
"""


def test_mim_finds_the_index_of_an_installed_wheel(wheel, tmp_path):
    """``openmim`` is not installed here (it pins setuptools 60 through openxlab); its lookup is
    the three lines above, run with the wheel installed ahead of the editable checkout."""
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target',
                    str(tmp_path), str(wheel)], check=True)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    found = subprocess.run([sys.executable, '-W', 'ignore', '-c', MIM_LOOKUP], env=env,
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert found.strip() == 'True'
