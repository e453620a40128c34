"""The jupyter-server extension of nbremote (installed as ``nbremote_server_ext``).

Not built yet: the REST proxy to the runner and the JupyterLab frontend come with the
promotion work.
"""
