"""The bad-input catalogue's test files import its shared harness (reliability_catalogue.py)
from this folder: with --import-mode=importlib a test module cannot import its neighbours."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
