"""``import crossformer_mm`` needs only torch, mmengine and mmcv."""
import subprocess
import sys
import textwrap

import pytest

TOOLBOXES = ('mmdet', 'mmseg', 'mmpretrain')

# Run in a fresh interpreter: imports the package, with the toolboxes blocked or not, builds the
# backbone from mmengine's root registry and reports which toolboxes got imported on the way.
SCRIPT = textwrap.dedent('''
    import importlib.abc, sys
    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f'No module named {{name!r}} (blocked)', name=name)

    sys.meta_path.insert(0, Block())
    for name in BLOCKED:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f'{{name}} is importable despite the block')

    import torch
    import crossformer_mm
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='CrossFormer', arch=dict(
        embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], group_size=[7, 7, 7, 7],
        interval=[8, 4, 2, 1], with_acl=False)))
    assert type(model) is crossformer_mm.CrossFormer, type(model)
    outs = model(torch.zeros(1, 3, 32, 32))
    # The hooks and the dataset type that configs name are registered by the import too.
    from mmengine.registry import DATASETS, HOOKS
    assert HOOKS.get('AtomicCheckpointHook') is crossformer_mm.engine.AtomicCheckpointHook
    assert HOOKS.get('RandomStateHook') is crossformer_mm.engine.RandomStateHook
    assert HOOKS.get('ReducedPrecisionHook') is crossformer_mm.engine.ReducedPrecisionHook
    assert DATASETS.get('NameFilesOnError') is crossformer_mm.datasets.NameFilesOnError
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128], [o.shape for o in outs]
    print('IMPORTED', sorted(m for m in {toolboxes!r} if m in sys.modules))
''')


@pytest.mark.parametrize('blocked', [TOOLBOXES, ()], ids=['toolboxes-blocked', 'toolboxes-present'])
def test_import_and_build_from_mmengine(blocked):
    script = SCRIPT.format(blocked=blocked, toolboxes=TOOLBOXES)
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Importing the package (and building from mmengine) pulls in none of the toolboxes.
    assert 'IMPORTED []' in proc.stdout, proc.stdout
