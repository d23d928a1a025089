"""Load a module from a file path: the one helper for the course's own code (reference models, release
hooks, dataset readers) in the judge, and for the probe module in the contestant. Never for student code in
the judge: the judge does not import it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(path: Path, name: str, register: bool = False) -> ModuleType:
    """Import `path` as module `name`. `register` puts it in sys.modules first (dataclasses and pickling in
    the module need that)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
