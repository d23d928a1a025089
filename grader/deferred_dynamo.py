"""torch._dynamo, imported only when something needs more of it than an eager training loop does.

Every `optimizer.step()` runs `import torch._dynamo` and `torch._dynamo.graph_break()`, and the optimizer's
methods are wrapped in `torch._dynamo.disable(fn)` on first call: about 870 modules, 1.3 s of a 2-core machine,
paid by every contestant before student code has trained a step, for calls that do nothing when nothing is being
compiled. `install()` puts a stand-in module in dynamo's place that answers those two calls itself while dynamo
was never imported (nothing can be compiling then, so both are no-ops, as dynamo's own are outside a compile),
and turns into the real torch._dynamo, in place, the first time anything else is asked of it: an attribute
(`torch.compile` asks for `optimize`), or a submodule import (`from torch._dynamo.utils import ...`).
A function wrapped by the stand-in's `disable` asks the real dynamo for its wrapper once dynamo is loaded.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import sys
import types
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from typing import Any

NAME = "torch._dynamo"
_state = {"loading": False}


class _Deferred(types.ModuleType):
    """torch._dynamo before it is imported. Its class becomes plain ModuleType when the real one loads."""

    def __getattr__(self, name: str) -> Any:
        if _state["loading"]:
            raise AttributeError(f"partially initialized module {NAME!r} has no attribute {name!r}")
        load()
        return getattr(self, name)

    def disable(self, fn: Callable[..., Any] | None = None, recursive: bool = True, **kwargs: Any) -> Any:
        if fn is None:  # @torch._dynamo.disable(recursive=False): a decorator factory, rare; load for it
            load()
            return self.disable(fn, recursive, **kwargs)
        real: list[Callable[..., Any]] = []

        @functools.wraps(fn)
        def deferred(*args: Any, **kw: Any) -> Any:
            if isinstance(sys.modules.get(NAME), _Deferred):
                return fn(*args, **kw)
            if not real:
                real.append(sys.modules[NAME].disable(fn, recursive, **kwargs))
            return real[0](*args, **kw)

        return deferred

    def graph_break(self, *args: Any, **kwargs: Any) -> None:
        """A no-op outside a compile, and no compile can be running before dynamo is imported."""


class _LoadFirst:
    """A meta-path finder: a submodule of the stand-in is imported only after the package itself is real."""

    @staticmethod
    def find_spec(fullname: str, path: Sequence[str] | None, target: Any = None) -> ModuleSpec | None:
        deferred = isinstance(sys.modules.get(NAME), _Deferred)
        if not fullname.startswith(NAME + ".") or _state["loading"] or not deferred:
            return None
        load()
        done = sys.modules.pop(fullname, None)
        if done is None:
            return None  # the package did not import it: the path finders that follow do
        # The package imported it already: hand the import system that module, not a second execution of it.
        return importlib.util.spec_from_loader(fullname, _Loaded(done))


class _Loaded(importlib.abc.Loader):
    def __init__(self, module: types.ModuleType) -> None:
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.spec
        module.__loader__ = self.spec.loader if self.spec is not None else None


def load() -> None:
    """Run torch._dynamo's own __init__ in the stand-in, which becomes the real module (same object, so every
    reference taken so far sees it)."""
    module = sys.modules.get(NAME)
    if not isinstance(module, _Deferred) or _state["loading"]:
        return
    _state["loading"] = True
    try:
        module.__class__ = types.ModuleType  # type: ignore[assignment]
        spec = module.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(module)
    finally:
        _state["loading"] = False
        if _LoadFirst in sys.meta_path:
            sys.meta_path.remove(_LoadFirst)


def install() -> bool:
    """Put the stand-in in place, unless dynamo is imported already. Returns whether it is in place."""
    if NAME in sys.modules:
        return isinstance(sys.modules[NAME], _Deferred)
    import torch

    spec = importlib.util.find_spec(NAME)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    module = _Deferred(NAME)
    module.__spec__, module.__loader__, module.__package__ = spec, spec.loader, NAME
    module.__file__, module.__path__ = spec.origin, list(spec.submodule_search_locations)
    sys.modules[NAME] = module
    torch._dynamo = module
    sys.meta_path.insert(0, _LoadFirst)
    return True
