"""The one C extension: the accept path of the produced-record walk
(strom/protocol/records/_walk.c). Optional: without a C compiler strom
installs anyway and validates records in Python (the same results, slower)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "strom.protocol.records._walk",
            ["strom/protocol/records/_walk.c"],
            optional=True,
        )
    ]
)
