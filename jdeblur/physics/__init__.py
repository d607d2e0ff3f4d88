"""The forward model y = H x + n: blur kernels, blur operators and their adjoints, noise, degradation."""
