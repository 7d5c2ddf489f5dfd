"""strom: an event streaming platform that speaks the Apache Kafka wire protocol."""

import sys

__version__ = "0.1.0"

# pip refuses to install strom on another Python (requires-python), but a
# checkout on PYTHONPATH or a copied virtualenv gets this far: say so in one
# line instead of a traceback from deep inside an import. Kept parseable by
# old Pythons (no syntax newer than 3.6 in this module).
if sys.version_info < (3, 11):  # noqa: UP036 (the point: older Pythons reach here)
    _message = "strom needs Python 3.11 to 3.13; this is Python {} ({})".format(
        sys.version.split()[0], sys.executable or "unknown interpreter")
    if sys.argv and sys.argv[0].rsplit("/", 1)[-1] in ("strom", "-m"):
        # the `strom` command or `python -m strom`: a message, exit status 1
        raise SystemExit("error: " + _message)
    raise ImportError(_message)
