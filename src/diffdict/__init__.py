"""diffdict: dictionary learning for text-to-image diffusion transformers."""

__version__ = "0.1.0"
