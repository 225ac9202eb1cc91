"""Does a forked worker keep sharing ScanCode's index with the process that loaded it?

CPython writes the reference counts of the objects it touches, so a child that only reads an object can still copy
its page. This loads the index (and licence database) the way ``stackv2.preload`` does, freezes it, then forks one
child per kind of input that detects licences in licence texts, exact or edited (one line in 30 changed, which
sends ScanCode to approximate matching), and prints each child's private memory (USS) as it goes.

    python -m bench.scale.shared --texts 50
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path


def private_and_resident_mib(pid: str | int = "self") -> tuple[int, int]:
    """(USS, RSS) of a process in MiB, from ``/proc/<pid>/smaps_rollup``."""
    kib = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Private_Clean", "Private_Dirty"):
                kib[key] = int(rest.split()[0])
    return (kib["Private_Clean"] + kib["Private_Dirty"]) // 1024, kib["Rss"] // 1024


def edited(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for i in rng.sample(range(len(lines)), max(1, len(lines) // 30)):
        lines[i] = "changed by the benchmark " + lines[i][::-1]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=50, help="licence texts each child detects")
    a = p.parse_args(argv)

    import licensedcode

    from stackv2.detect.config import LicenseConfig
    from stackv2.detect.license import detect_licenses
    from stackv2.preload import Preload, load

    t0 = time.monotonic()
    load(Preload(scancode=True))
    print(f"parent: loaded in {time.monotonic() - t0:.1f} s; USS, RSS MiB {private_and_resident_mib()}", flush=True)
    paths = sorted((Path(licensedcode.__file__).parent / "data" / "licenses").glob("*.LICENSE"))
    step = max(1, len(paths) // a.texts)
    texts = [path.read_text(errors="replace") for path in paths[::step][: a.texts]]
    for kind in ("exact", "edited"):
        pid = os.fork()
        if pid == 0:
            rng, found = random.Random(0), 0
            for n, text in enumerate(texts, 1):
                found += bool(detect_licenses(edited(text, rng) if kind == "edited" else text, LicenseConfig()))
                if n in (1, 10, len(texts)):
                    print(
                        f"child, {kind}: {n} texts, {found} with licences; USS, RSS MiB {private_and_resident_mib()}",
                        flush=True,
                    )
            os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
