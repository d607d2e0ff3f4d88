"""Training: state, the per-device step, parallel wrappers, checkpoints, evaluation, logging."""
