"""The wheel carries the model index and the configs where ``mim search crossformer_mm`` reads
them (``crossformer_mm/.mim``), and the index lists every config with its Params and FLOPs."""
import subprocess
import sys
import zipfile
from pathlib import Path

from modelindex.load_model_index import load

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_model_index(tmp_path):
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(tmp_path), str(ROOT)], check=True)
    wheel, = tmp_path.glob('crossformer_mm-*.whl')
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
