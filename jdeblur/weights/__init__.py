"""Weights from elsewhere, read as data: PyTorch ``.pth`` and ``safetensors`` files, converted to jdeblur models.

A ``.pth`` is a pickle, and unpickling can run any code the file names; ``torch_pickle`` reads
one with an unpickler that builds nothing but tensors, storages and dicts. ``state_dict`` reads
either format into ``{name: numpy array}``; ``nafnet`` maps the official NAFNet's names and
layouts onto jdeblur's; ``importer`` writes the result as a workdir.
"""
