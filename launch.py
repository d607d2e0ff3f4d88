#!/usr/bin/env python
"""The checkout's entry point: ``python launch.py ...`` is the ``jdeblur`` command (``jdeblur/cli.py``).

    python launch.py                      # the default experiment (quickstart) into a fresh workdir
    python launch.py train --config experiments/quickstart.py[:runlocal] --workdir DIR [--config.F=V ...]
    python launch.py eval | deblur | export | sweep | report | import-weights ... (--help for each)
"""
import sys

from jdeblur.cli import main

if __name__ == "__main__":
    sys.exit(main())
