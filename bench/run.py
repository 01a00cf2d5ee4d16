"""`make bench`: every benchmark in turn; each writes its JSON to bench/results/ and prints a summary.

python bench/run.py                 # all
python bench/run.py asreg sas       # some (names: asreg, sas, registry, token-flood; sas-engine on request)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = {
    "asreg": [HERE / "asreg.py"],
    "sas": [HERE / "sas.py"],
    "registry": [HERE / "registry.py"],
    # The data-plane engine alone (allow-all gate) against nginx: for work on the engine.
    "sas-engine": [HERE / "sas_engine.py", "--rounds", "5"],
    # /oauth2/token under a flood of wrong secrets (issue 8 item 8: legitimate latency <= 2x).
    "token-flood": [HERE / "token_flood.py"],
}
DEFAULT = ["asreg", "sas", "registry", "token-flood"]


def main() -> int:
    names = sys.argv[1:] or DEFAULT
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        status |= subprocess.run([sys.executable, *map(str, BENCHMARKS[name])], check=False).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
