"""`make bench`: every benchmark in turn; each writes its JSON to bench/results/ and prints a summary.

python bench/run.py                 # all
python bench/run.py asreg sas       # some (names: asreg, sas, registry, token-flood; sas-engine on request)
python bench/run.py --check [NAME]  # what would run and what would be skipped, running nothing

A benchmark whose programs (nginx, wrk, taskset) are not installed is skipped, saying which are
missing and how to install them; the last line names every benchmark that did not run. Optional
peers (Envoy, etcd) are left out by the benchmark itself, which says so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import missing_tools  # noqa: E402

HERE = Path(__file__).parent
BENCHMARKS: dict[str, list[Path | str]] = {
    "asreg": [HERE / "asreg.py"],
    "sas": [HERE / "sas.py"],
    "registry": [HERE / "registry.py"],
    # The data-plane engine alone (allow-all gate) against nginx: for work on the engine.
    "sas-engine": [HERE / "sas_engine.py", "--rounds", "5", "--http2"],
    # /oauth2/token under a flood of wrong secrets (issue 8 item 8: legitimate latency <= 2x).
    "token-flood": [HERE / "token_flood.py"],
}
DEFAULT = ["asreg", "sas", "registry", "token-flood"]
# The programs each benchmark cannot do without (servers and load generator pinned with taskset).
NEEDS = {
    "asreg": ("wrk", "taskset"),
    "sas": ("nginx", "wrk", "taskset"),
    "registry": ("nginx", "wrk", "taskset"),
    "sas-engine": ("nginx", "wrk", "taskset"),
    "token-flood": ("taskset",),
}


def main() -> int:
    args = sys.argv[1:]
    check = "--check" in args
    names = [a for a in args if a != "--check"] or DEFAULT
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    status = 0
    skipped: list[str] = []
    for name in names:
        reason = missing_tools(*NEEDS[name])
        if reason is not None:
            print(f"== {name}: skipped, {reason}", flush=True)
            skipped.append(name)
        elif check:
            print(f"== {name}: ready", flush=True)
        else:
            print(f"== {name}", flush=True)
            status |= subprocess.run([sys.executable, *map(str, BENCHMARKS[name])], check=False).returncode
    if skipped:
        print(f"not run: {', '.join(skipped)} (their programs are missing, see above)", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
