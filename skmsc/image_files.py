"""Moved to :mod:`skmsc.data.files`; the old path works for one release, with a FutureWarning."""

from ._moved import moved_module

MOVED_TO = "skmsc.data.files"
__getattr__ = moved_module("skmsc.image_files", MOVED_TO)
