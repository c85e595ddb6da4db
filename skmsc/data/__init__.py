"""The data layer: images as arrays or files, batched for the network (no torch here).

- ``files``: image files and PIL images (listing, decoding,
  :class:`~skmsc.data.files.ImageFiles`);
- ``_batches``: the one batch source the torch layer reads, for arrays and files alike
  (``len``, ``subset``, ``reader(transform)``).
"""
