"""The wire: everything the client, the runner and the worker must agree on.

``http``    pydantic models of the JSON documents of the runner's HTTP API (``CreateSession``)
``images``  the HTTP API's image models, and how an image and its layers are named
``frames``  pydantic models of the hot path's frame headers, one per op, checked on receipt
``codec``   the binary frame format and its reader and writer (standard library only)
``shm``     big frame buffers through shared memory on one machine (standard library only)
``gpu``     GPU spec text and how a spec matches a device
``mounts``  where a volume may be mounted
``serialize``  one value as a pickle and its out-of-band buffers, content-hashed
``classes``    the worker's side of remote classes (instances, ``@nr.enter``/``@nr.exit``)
``transport``  where Dict, Queue and Volume requests go from inside a worker
``home``       ``NBREMOTE_HOME``, where the embedded runner lives

Both sides import these modules and nothing else of each other: the runner imports no client
API module. This package imports nothing itself, so that the worker, which imports the standard
library modules (``codec``, ``shm``, ``serialize``, ``transport``, ``classes``), never pays for
pydantic: import the models from their module
(``from nbremote.wire.http import CreateSession``).
"""
