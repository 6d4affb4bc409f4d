"""``type='CrossFormer'`` builds from each toolbox's registry and from configs."""
import glob
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from crossformer_mm import CrossFormer

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                 group_size=[7, 7, 7, 7], interval=[8, 4, 2, 1], with_acl=False)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_build_from_toolbox_registry(scope):
    registry = pytest.importorskip(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        assert registry.MODELS.get('CrossFormer') is CrossFormer
        model = registry.MODELS.build(dict(type='CrossFormer', arch=TINY_ARCH))
    assert type(model) is CrossFormer


# A user's own config names the package only in custom_imports. It is loaded in a fresh
# interpreter, so that the import really comes from the config.
USER_CONFIG = f'''
custom_imports = dict(imports=['crossformer_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
model = dict(type='CrossFormer', arch={TINY_ARCH!r})
'''
SCRIPT = textwrap.dedent('''
    import sys
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    assert 'crossformer_mm' not in sys.modules
    cfg = Config.fromfile(sys.argv[1])
    assert 'crossformer_mm' in sys.modules, 'custom_imports did not import crossformer_mm'
    from crossformer_mm import CrossFormer
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert type(model) is CrossFormer, type(model)
''')


def test_build_from_user_config_with_custom_imports(tmp_path):
    pytest.importorskip('mmseg')
    config = tmp_path / 'user_config.py'
    config.write_text(USER_CONFIG)
    proc = subprocess.run([sys.executable, '-c', SCRIPT, str(config)], capture_output=True,
                          text=True, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# One of the repo's classification configs and one of its others (detection, segmentation):
# they import the package the same way, and their backbone (made tiny) builds from the registry
# of their default scope.
REPO_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')))
REPO_CONFIGS = [p for p in REPO_CONFIGS if 'in1k' in p][:1] + \
    [p for p in REPO_CONFIGS if 'in1k' not in p][:1]


@pytest.mark.parametrize('path', REPO_CONFIGS, ids=osp.basename)
def test_build_from_repo_config(path):
    cfg = Config.fromfile(path)
    assert 'crossformer_mm' in cfg.custom_imports.imports
    registry = pytest.importorskip(f'{cfg.default_scope}.registry')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(dict(cfg.model.backbone, arch=TINY_ARCH))
    assert type(model) is CrossFormer
