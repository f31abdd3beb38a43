"""imginspect: inspect container images in a remote registry without pulling them.

The package root stays import-light on purpose: the CLI's start-up time matters, so
nothing here imports httpx, click or rich.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
