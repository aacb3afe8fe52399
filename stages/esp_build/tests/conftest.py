"""esp-build tests: the repo root on sys.path (they run in the esp image: no ESP-IDF there)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
