"""Moved to :mod:`skmsc.nn.model`; the old path works for one release, with a FutureWarning."""

from ._moved import moved_module

MOVED_TO = "skmsc.nn.model"
__getattr__ = moved_module("skmsc.torch_model", MOVED_TO)
