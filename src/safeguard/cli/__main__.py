"""``python -m safeguard.cli``: the ``safeguard`` command."""

import os

from safeguard.cli import main

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
