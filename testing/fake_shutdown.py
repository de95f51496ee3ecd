"""A recording stand-in for ``shutdown -h now``, for the demo and tests of the host supervisor.

    python testing/fake_shutdown.py RECORD_FILE -h now   # appends {"at": <time>, "args": [...]}

The supervisor's ``--shutdown-command`` is given this script (with RECORD_FILE) instead of the
real command; the record shows when the instance would have shut down (and, with the launch
template's shutdown behaviour ``terminate``, stopped billing). Read it with :func:`read_record`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def read_record(path: Path) -> list[dict]:
    """Every shutdown request recorded in ``path``, oldest first (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: fake_shutdown.py RECORD_FILE [shutdown arguments...]", file=sys.stderr)
        return 2
    record, args = Path(argv[0]), argv[1:]
    with record.open("a") as handle:
        handle.write(json.dumps({"at": time.time(), "args": args}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
