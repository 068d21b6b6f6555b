"""pruneviz: see and do neural-network pruning.

The Python API is the same engine the app and the command line use::

    from pruneviz import Session
    s = Session.open("demo:mlp", data="demo:digits")
    s.prune(0.5, scope="global")
    print(s.evaluate().accuracy)

Importing pruneviz never imports Qt.
"""

__version__ = "0.1.0"

__all__ = ["Session", "load_model", "PrunevizError", "__version__"]


def __getattr__(name):
    # torch is heavy: import the engine on first use, not on `import pruneviz`
    if name == "Session":
        from pruneviz.core.session import Session

        return Session
    if name == "load_model":
        from pruneviz.core.model_io import open_model

        return open_model
    if name == "PrunevizError":
        from pruneviz.core.errors import PrunevizError

        return PrunevizError
    raise AttributeError(name)
