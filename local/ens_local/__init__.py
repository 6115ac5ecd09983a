"""The ENS local stack: the service on one machine, no AWS account (`make run`).

The local stack seeds records with ENS's own adapters, so the shipped `ens` package must be
importable, as it is for a function from its layer (/opt/python in Lambda).
"""

import sys
from pathlib import Path

_ENS_LAYER = str(Path(__file__).resolve().parents[2] / "layers" / "ens")
if _ENS_LAYER not in sys.path:
    sys.path.append(_ENS_LAYER)
