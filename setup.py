"""crossformer_mm: CrossFormer and CrossFormer++ backbones for mmdet 3, mmseg 1 and mmpretrain 1."""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# Every version range of the project is stated here, once.
MMDET = 'mmdet>=3.0,<4.0'
MMSEG = 'mmsegmentation>=1.0,<2.0'
MMPRETRAIN = 'mmpretrain>=1.0,<2.0'
EXTRAS = {
    'det': [MMDET],
    # mmseg 1.2 imports ftfy and regex without declaring them.
    'seg': [MMSEG, 'ftfy', 'regex'],
    'cls': [MMPRETRAIN],
    # pytest-xdist: `make test` runs the suite in one worker per core.
    'tests': ['pytest', 'pytest-xdist', 'pycocotools', 'model-index'],
    # tools/deploy.py. mmdeploy 1.3.1 ships wheels for x86-64 Linux and Windows only, and pins
    # protobuf<=3.20.2, so pip picks onnx 1.17 and onnxruntime 1.26 beside it.
    'deploy': ['onnx', 'onnxruntime', 'onnxscript',
               'mmdeploy==1.3.1; platform_machine == "x86_64" or platform_machine == "AMD64"'],
}
EXTRAS['all'] = sorted({req for reqs in EXTRAS.values() for req in reqs})
VERSION = {}
exec(Path(__file__).with_name('crossformer_mm').joinpath('version.py').read_text(), VERSION)


class BuildPyWithModelIndex(build_py):
    """Ship the model index and the configs inside the package, in ``crossformer_mm/.mim``,
    where ``mim search crossformer_mm`` looks for them (as mmdet does)."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib, 'crossformer_mm', '.mim')
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy('model-index.yml', target)
        shutil.copytree('configs', target / 'configs', dirs_exist_ok=True)


setup(
    name='crossformer_mm',
    version=VERSION['__version__'],
    description='CrossFormer / CrossFormer++ vision backbones for OpenMMLab 2.0',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['crossformer_mm', 'crossformer_mm.*']),
    python_requires='>=3.9',
    install_requires=[
        # Safe loading (weights_only=True by default, torch.serialization.safe_globals).
        'torch>=2.6',
        'mmengine>=0.10,<1.0',
        'mmcv>=2.0,<2.2',
    ],
    extras_require=EXTRAS,
    cmdclass={'build_py': BuildPyWithModelIndex},
    license='MIT',
)
