"""Datasets (TFDS builders without TensorFlow) and the grain input pipeline.

- ``images``: reading a user's image files into uint8 RGB HWC (16-bit, gray, alpha handled).
- ``builders``, ``paired_builders``: TFDS builders written as array_record with no TensorFlow:
  ``skimage_images`` (the embedded default, no download), ``image_folder`` (a user's sharp
  photos), ``gopro`` (GOPRO_Large, configs ``blur``/``blur_gamma``), ``paired_folder``
  (blurred/sharp folders or list files: HIDE, RealBlur, a user's pairs).
- ``datasets``: ``load_dataset(name, split=...)`` builds once into a data directory and returns
  a random-access source of uint8 records.
- ``augment``, ``pipeline``: random patches and the deterministic, checkpointable grain loader
  (``default_data_config``, ``make_train_loader``, ``DevicePrefetchIterator``).
- ``eval_set``: full-size test images with fixed, saved degradations (or the real pairs).

Images are uint8 HWC on the host; they become float32 in [0, 1] on the device.
"""
