"""A plain reference implementation, for tests and benchmarks; not used by the models."""
from .oracle import OracleCrossFormer

__all__ = ['OracleCrossFormer']
