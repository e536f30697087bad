"""The pinned environment: both compiled requirements files pin every package, and they agree."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pins(name: str) -> dict[str, str]:
    """Package → version in a compiled requirements file; every requirement must be ``name==version``."""
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            package, pinned, version = requirement.partition("==")
            assert pinned and version, f"{name}: {requirement!r} is not pinned"
            found[package.lower().replace("_", "-")] = version
    return found


def test_dev_requirements_pin_the_runtime_at_the_same_versions():
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert {"torch", "gradio", "numpy"} <= runtime.keys()
    assert {name: dev.get(name) for name in runtime} == runtime
    assert {"pytest", "ruff", "playwright", "scikit-learn"} <= dev.keys()
