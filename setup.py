"""The C extensions: the accept paths of the produced-record walk
(strom/protocol/records/_walk.c) and of the request parsers
(strom/protocol/fast/_produce.c), and the GIL-free fsync threads
(strom/storage/_fsync.c). Optional: without a C compiler strom
installs anyway and validates records in Python (the same results, slower)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "strom.protocol.records._walk",
            ["strom/protocol/records/_walk.c"],
            optional=True,
        ),
        # The accept path of the request header and ProduceRequest parsers.
        Extension(
            "strom.protocol.fast._produce",
            ["strom/protocol/fast/_produce.c"],
            optional=True,
        ),
        # fsync threads that never take the GIL (acks=all group commit).
        Extension(
            "strom.storage._fsync",
            ["strom/storage/_fsync.c"],
            optional=True,
        ),
    ]
)
