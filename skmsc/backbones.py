"""Moved to :mod:`skmsc.nn.backbones`; the old path works for one release, with a FutureWarning."""

from ._moved import moved_module

MOVED_TO = "skmsc.nn.backbones"
__getattr__ = moved_module("skmsc.backbones", MOVED_TO)
