"""Model architectures, one module each; each registers itself for safe loading.

Importing this package imports every module in it, so that every architecture is
registered (`medlstm.core.persistence.register_architecture`) and a saved model
of any of them loads in a fresh process; a new module here needs no list entry.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
