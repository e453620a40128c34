"""Modules a remote cell imported, bound in the notebook without importing them here yet.

A cell that ran ``import pandas, matplotlib.pyplot as plt`` on the worker binds ``pandas`` and
``plt`` in the notebook too, as the same cell would locally. Importing them here at once would
cost seconds after the cell's last output, for modules the notebook may never touch outside
``%%remote`` cells. So a module not imported here yet is bound as a lazy module
(`importlib.util.LazyLoader`): it is found now (a module only the worker's image has stays
unbound, as before), and executed on its first attribute access, after which it is the ordinary
module (a later local ``import pandas`` gets that same module).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

# Loaders that run Python source: those LazyLoader can defer (not extension modules).
_DEFERRABLE = (importlib.machinery.SourceFileLoader, importlib.machinery.SourcelessFileLoader)


_lazy: dict[str, ModuleSpec] = {}  # the specs of lazy packages made here, for their submodules


def _find(name: str) -> ModuleSpec | None:
    """``name``'s spec, without loading its package if that is still lazy (``find_spec`` would
    read the package's ``__path__``, loading it)."""
    parent = name.rpartition(".")[0]
    spec = _lazy.get(parent)
    if spec is not None and type(sys.modules.get(parent)) is not ModuleType:
        return importlib.machinery.PathFinder.find_spec(name, spec.submodule_search_locations)
    return importlib.util.find_spec(name)


def import_lazily(name: str) -> ModuleType:
    """The module ``name``: the one imported here already, else one that loads on first use.

    Raises:
        ImportError: it cannot be found here.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    parent, _, _ = name.rpartition(".")
    if parent:
        import_lazily(parent)
    spec = _find(name)
    if spec is None:
        raise ImportError(f"no module named {name!r}", name=name)
    if not isinstance(spec.loader, _DEFERRABLE):
        return importlib.import_module(name)
    if spec.submodule_search_locations is not None:
        _lazy[name] = spec
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    if parent:
        # As the import system does: a submodule is an attribute of its package. Set without
        # touching the package's other attributes, so a lazy package stays unloaded.
        setattr(sys.modules[parent], name.rpartition(".")[2], module)
    return module
