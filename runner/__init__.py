"""The nbremote runner: the service that runs notebook cells and functions on its workers.

Installed as ``nbremote_runner`` (a user's ``runner.py`` can never shadow it). This package's
``__init__`` stays empty because the worker program (`nbremote_runner.worker`) lives here too and
must import nothing it does not need.
"""
