"""Moved to :mod:`skmsc.nn.augment`; the old path works for one release, with a FutureWarning."""

from ._moved import moved_module

MOVED_TO = "skmsc.nn.augment"
__getattr__ = moved_module("skmsc.augment", MOVED_TO)
