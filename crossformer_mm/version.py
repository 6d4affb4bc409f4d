"""The package version, stated once: setup.py reads it from here."""
__version__ = '0.1.0'
