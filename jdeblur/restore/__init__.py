"""Classical non-blind deconvolution: inverse filter, Wiener, Richardson-Lucy, TV."""
