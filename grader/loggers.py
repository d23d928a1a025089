"""Experiment loggers (TensorBoard, Weights & Biases, SwanLab, ...) and IPython's display, stood in for by modules
that do nothing.

Students log their training curves with these, and d2l's plots call IPython's display; a TA running their code
would let the calls pass: what they show or log is not graded. Grading cannot run them for real: most are not
installed in the sandbox, and W&B or SwanLab would wait on a network grading does not have. So the contestant
answers every import of them with a stand-in whose every call does nothing (`StandIns`, ahead of the
allowed-packages check), and the judge says so in a note that costs nothing (`logger_note`). Imported by both
sides; imports nothing heavy.
"""

from __future__ import annotations

import ast
import importlib.abc
import sys
import types
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from typing import Any

# module -> the name students know it by; submodules (torch.utils.tensorboard.writer) are stood in for too
LOGGERS = {
    "torch.utils.tensorboard": "TensorBoard", "tensorboard": "TensorBoard", "tensorboardX": "TensorBoard",
    "wandb": "Weights & Biases", "swanlab": "SwanLab", "visdom": "Visdom", "mlflow": "MLflow",
    "comet_ml": "Comet", "neptune": "Neptune", "aim": "Aim", "clearml": "ClearML", "IPython": "IPython's display",
}  # fmt: skip
PACKAGES = {name.partition(".")[0] for name in LOGGERS} - {"torch"}  # top-level names the package rule exempts


def logger_of(module: str) -> str | None:
    """The logger `module` belongs to, if it is one."""
    return next((n for m, n in LOGGERS.items() if module == m or module.startswith(m + ".")), None)


class _InertType(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return cls()  # wandb.run.name: the module's attribute is the class, its attributes instances


class Inert(metaclass=_InertType):
    """What a logger's every name is: a class (so `class MyWriter(SummaryWriter)` keeps its own methods) whose
    instances accept every call, attribute, `with` and iteration, and do nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Inert:
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and the like ask for protocols it does not have
            raise AttributeError(name)
        return self

    def __enter__(self) -> Inert:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __iter__(self) -> Any:
        return iter(())

    def __repr__(self) -> str:
        return "<logger stand-in>"


class Config(dict[str, Any]):
    """`wandb.config` / `swanlab.config`: what `init(config=...)` was given, read as attributes too (a sweep's
    `config.lr`), so code that takes its hyperparameters from it still gets them."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def update(self, values: Any = None, allow_val_change: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(values if isinstance(values, dict) else {}, **kwargs)  # allow_val_change: W&B's option


class _Logger(types.ModuleType):
    """A stand-in module: `config` and `init` as W&B and SwanLab have them, anything else Inert."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"stand-in for {logger_of(name)}: logs nothing (grader.loggers)")
        self.config = Config()
        if name.partition(".")[0] == "IPython":  # matplotlib reads it at each figure once IPython is imported
            self.version_info = (9, 0, 0, "")

    def init(self, *args: Any, config: Any = None, **kwargs: Any) -> Inert:
        self.config.update(config if isinstance(config, dict) else getattr(config, "__dict__", None))
        run = Inert()
        run.config = self.config  # type: ignore[attr-defined]  # an attribute of this one run
        return run

    @staticmethod
    def get_ipython() -> None:
        """IPython's answer outside IPython: matplotlib asks when IPython is imported (an Inert shell, and an
        Inert version_info, broke every figure of d2l's plotting code)."""
        return None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return Inert


class StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta-path finder that answers the loggers' imports with stand-ins, whatever is installed."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if logger_of(fullname) is None:
            return None
        return ModuleSpec(fullname, self, is_package=True)  # a package: `from wandb.sdk import ...` works too

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        module = _Logger(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Put the stand-ins first on the meta path: ahead of the allowed-packages check and the real packages."""
    sys.meta_path.insert(0, StandIns())


def logger_note(name: str, source: str, at: Callable[[int], str] | None = None) -> str | None:
    """The note for a student file `name` that imports loggers, naming each where it is first imported (`at`
    says where a line of `source` is: a notebook's cell)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    first: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # from torch.utils import tensorboard names the logger in what it imports
            modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for module in modules:
            if (logger := logger_of(module)) is not None:
                first[logger] = min(first.get(logger, node.lineno), node.lineno)
    if not first:
        return None
    where = at or (lambda line: f"line {line}")
    named = [f"{n} ({where(line)})" for n, line in sorted(first.items(), key=lambda kv: kv[1])]
    used = " and ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    one = len(first) == 1
    return (f"{name} uses {used}: grading ran {'it as a stand-in that does' if one else 'them as stand-ins that do'} "
            f"nothing (what {'it shows or logs' if one else 'they show or log'} is not graded); this costs nothing")
