from .backbones import CrossFormer

__all__ = ['CrossFormer']
