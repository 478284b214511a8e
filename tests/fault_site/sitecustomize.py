"""Loaded at start-up by every Python process whose PYTHONPATH holds this folder (the fault tests
put it there, so spawned synth workers load it too): installs tests/fault_hooks.py when
``$JMOSHI_TEST_FAULTS`` names a folder of planted faults. Nothing here runs in a normal run."""

import os
import sys

if os.environ.get("JMOSHI_TEST_FAULTS"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fault_hooks

    fault_hooks.install()
