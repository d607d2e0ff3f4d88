"""Datasets (TFDS builders without TensorFlow) and the grain input pipeline."""
