"""The wire: everything the client, the runner and the worker must agree on.

``http``    pydantic models of every JSON document of the runner's HTTP API (``CreateSession``)
``frames``  pydantic models of the hot path's frame headers, one per op, checked on receipt
``codec``   the binary frame format and its reader and writer (standard library only)
``shm``     big frame buffers through shared memory on one machine (standard library only)
``gpu``     GPU spec text and how a spec matches a device
``mounts``  where a volume may be mounted

Both sides import these modules and nothing else of each other: the runner imports no client
API module. This package imports nothing itself, so that the worker, which imports ``codec`` and
``shm``, never pays for pydantic: import the models from their module
(``from nbremote.wire.http import CreateSession``).
"""
