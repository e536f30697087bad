"""DiffMIC Explorer, the Gradio app: ``build_demo()`` builds it, ``launch(demo)`` serves it.

UI code only; every computation is a call into the ``diffmic`` package.
"""

from .server import launch
from .settings import load_settings
from .ui import build_demo

__all__ = ["build_demo", "launch", "load_settings"]
