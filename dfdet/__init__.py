"""dfdet: composable command-line tools for audio deepfake (spoofed speech) detection research."""

__version__ = "0.1.0"
