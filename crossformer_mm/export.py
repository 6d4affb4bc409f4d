"""The old import path of :mod:`crossformer_mm.deploy.export`, which the deployment docs of
versions up to 0.x showed (``from crossformer_mm.export import export_onnx``); it re-exports
the public names. New code imports :mod:`crossformer_mm.deploy`."""
from .deploy.export import *  # noqa: F401,F403
from .deploy.export import __all__  # noqa: F401
