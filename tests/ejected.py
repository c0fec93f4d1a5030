"""Loading an ejected model.py back into this process, shared by the codegen tests.

tests/ is not a package: test files put this folder on `sys.path` and `from ejected import ...`.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch import nn


def import_file(path: Path) -> ModuleType:
    """Import a generated file as a module, in this process (no subprocess, nothing left in sys.modules)."""
    name = f"netspec_ejected_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def network_class(module: ModuleType) -> type[nn.Module]:
    """The network's class: the last one the file defines (block classes come before it)."""
    classes = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__]
    return classes[-1]
