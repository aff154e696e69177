"""Search methods, one registered file each (`recnas methods` lists them).

A new method is one file with a `SearchMethod` subclass under `@register_method("name")`: add its module to
`BUILTIN_METHODS` (recnas/methods/base.py), or import it yourself before its config is read. The built-in
methods load on first use of the registry, so reading a config without a search section (as `recnas predict`
does) imports no search layer.
"""

from __future__ import annotations

from recnas.methods.base import (
    METHODS,
    BudgetConfig,
    MethodConfig,
    SearchMethod,
    get_method,
    load_builtin_methods,
    method_names,
    method_of,
    register_method,
)

__all__ = ["METHODS", "BudgetConfig", "MethodConfig", "SearchMethod", "get_method", "load_builtin_methods",
           "method_names", "method_of", "register_method"]
