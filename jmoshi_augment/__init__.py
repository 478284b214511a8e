"""jmoshi-augment: Japanese full-duplex spoken dialogue data and runtime."""

__version__ = "0.1.0"
