"""uoc's deterministic state machine: integers only, no I/O beyond the `Store` it is given.

The names below are re-exported lazily (`lazy_loader`, from `__init__.pyi`): importing one submodule,
such as `chain.errors`, does not load the others, so the command line starts without what it does not
run."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
