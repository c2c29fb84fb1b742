"""duplexalign: align full-duplex spoken dialogue models from user interactions."""
__version__ = "0.1.0"
