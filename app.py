"""DiffMIC Explorer: ``python app.py`` serves on 0.0.0.0 and GRADIO_SERVER_PORT (default 7860).

``demo`` is a module-level global, as Hugging Face Spaces expect.
"""

import logging

from app import build_demo, launch, load_settings
from app.models import ModelRegistry

settings = load_settings()
registry = ModelRegistry(settings)
demo = build_demo(settings, registry)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    launch(demo, registry, settings)
