"""docs/architecture.md names only things that exist: every module, class and function in backticks
(``diffmic/pipeline.py``, ``DiffMICPipeline.check_distribution``, ``lean_chain``, ``ood_fit.fit_check``)
resolves by importing it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from functools import cache
from pathlib import Path

import pytest

import app
import diffmic

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
FILES = ("json", "safetensors", "npz", "md", "png", "pt")  # files a model folder or run holds, not code
NAME = re.compile(r"[A-Za-z_][\w.]*(\(\))?")


DIAGRAM_NAMES = re.compile(
    r"\b(?:diffmic|app)/[\w/]+\.py\b"  # diffmic/pipeline.py
    r"|\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b"  # DiffMICPipeline.prepare, rois.roi_map
    r"|\b[A-Z][a-z]+[A-Z]\w*\b"  # DualGuidance
    r"|\b[a-z]{2,}(?:_[a-z]{2,})+\b"  # lean_chain (not the formulas' w_g or y_T)
)


def named_in_doc() -> list[str]:
    """What the document names as code: the backticked paths (ending in .py or /) and dotted names, and in
    its fenced diagram the .py paths, dotted names, CamelCase class names and snake_case functions."""
    text = DOC.read_text()
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        spans += DIAGRAM_NAMES.findall(block)
    out = []
    for span in spans:
        if span.endswith((".py", "/")) and " " not in span:
            out.append(span)
        elif NAME.fullmatch(span) and span.rsplit(".", 1)[-1] not in FILES:
            out.append(span.removesuffix("()"))
    return list(dict.fromkeys(out))


@cache
def modules() -> dict[str, object]:
    """Every module of ``diffmic`` and ``app``, imported, by full name."""
    found = {}
    for package in (diffmic, app):
        found[package.__name__] = package
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            found[info.name] = importlib.import_module(info.name)
    return found


def code_files() -> list[Path]:
    tops = ("diffmic", "app", "benchmarks", "docs", "tests")
    return [p for top in tops for p in (ROOT / top).rglob("*.py")]


def path_exists(span: str) -> bool:
    """``diffmic/pipeline.py``, ``data/shards.py``, ``ood.py`` or ``data/``: a file or folder here."""
    if (ROOT / span).exists():
        return True
    if span.endswith("/"):
        return any((ROOT / top / span).is_dir() for top in ("diffmic", "app"))
    return any(p.as_posix().endswith("/" + span) for p in code_files())


def _attr(obj: object, parts: list[str]) -> bool:
    for part in parts:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def resolves(name: str) -> bool:
    """A dotted name resolves when, read from the left, it is a module (full or by its last component, as
    ``lean`` or ``synthetic``) or a top-level name of one, followed by attributes."""
    if name.endswith((".py", "/")):
        return path_exists(name)
    parts = name.split(".")
    mods = modules()
    for i in range(len(parts), 0, -1):  # the longest module prefix: ``diffmic.data.synthetic.GENERATORS``
        prefix = ".".join(parts[:i])
        if prefix in mods and _attr(mods[prefix], parts[i:]):
            return True
    first, rest = parts[0], parts[1:]
    for full, module in mods.items():
        if full.rsplit(".", 1)[-1] == first and _attr(module, rest):  # ``lean.fold``, ``ood_fit.fit_check``
            return True
        if _attr(module, parts) and ours(getattr(module, first)):
            return True  # ``lean_chain``, ``DiffMICPipeline.check_distribution``, ``TASKS``
    return False


def ours(obj: object) -> bool:
    """Defined in this repository: a module, class or function of ``diffmic`` or ``app`` (or a constant)."""
    if inspect.ismodule(obj):
        return obj.__name__.startswith(("diffmic", "app"))
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return getattr(obj, "__module__", "").startswith(("diffmic", "app"))
    return True


def test_the_document_names_code_of_every_kind():
    names = named_in_doc()
    assert {"diffmic/pipeline.py", "DiffMICPipeline.check_distribution", "lean_chain"} <= set(names)
    assert len(names) > 60


@pytest.mark.parametrize("name", named_in_doc())
def test_every_name_in_the_architecture_document_exists(name):
    assert resolves(name), f"docs/architecture.md names `{name}`, which the code does not have"


@pytest.mark.parametrize(
    "name", ["diffmic/nowhere.py", "DiffMICPipeline.no_such_method", "no_such_function", "lean.no_fold", "np"]
)
def test_a_name_the_code_does_not_have_is_caught(name):
    assert not resolves(name)
