"""xlavsr: noise-robust audio-visual speech recognition and translation (XLAVS-R style).

The import package ``avsr`` is the core (models, data, noise, metrics, checkpoints,
training loop); ``preprocessing``, ``clustering`` and ``tasks`` build on it.
"""

__version__ = "0.1.0"
