"""thinnka: fine-tune a Hugging Face model on a rented Runpod GPU in one command."""

__version__ = "0.1.0"
__all__ = ["__version__"]
