"""torch-grader: grade PyTorch course assignments with a trusted judge and a sandboxed contestant."""

__version__ = "0.1.0"
