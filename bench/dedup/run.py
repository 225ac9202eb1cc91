"""Near-dedup benchmark: our Spark stage vs datatrove, rensa, datasketch (and text-dedup when given a python).

For each scale: write the corpus, compute the exact ground truth, run every system in its own process (wall
time, CPU seconds and peak RSS of its whole process tree, sampled from /proc every 50 ms, and the load average
when it ends: on a shared machine wall times mean little without it), score it. Also times the
signature engines alone (shingling, our numpy MinHash, rensa's batched digests) on the ×1 corpus.

    python -m bench.dedup.run --scales 1 4 16 [--systems ours datatrove rensa datasketch]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from bench.dedup import truth
from bench.dedup.corpus import scaled
from stackv2 import schema
from stackv2.dedup.config import DedupConfig
from stackv2.dedup.minhash import MinHasher
from stackv2.dedup.shingle import ngrams, shingle_hash_sets, shingle_hashes
from stackv2.workdir import adopt_outputs

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "work" / "bench-dedup"
INPUT = pa.schema([*schema.FETCHED, pa.field("language", pa.string()), pa.field("license_type", pa.string())])


_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _sample(pids: list[int], cpu: dict[int, float]) -> int:
    """RSS KiB of ``pids``; records each one's own CPU seconds so far (user + system) in ``cpu``."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        cpu[pid] = (int(stat[11]) + int(stat[12])) / _TICKS  # utime, stime (fields 14, 15 of stat)
    return total


def measure(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """(wall seconds, peak MiB of the process tree, CPU seconds of the tree); raises if the command fails.

    Every 50 ms the tree is walked for its RSS and each process's own CPU time so far. CPU seconds is the larger
    of two lower bounds: the sum of each process's last sample (misses up to 50 ms per process, and processes
    that lived less), and the root's ``wait4`` usage (exact for the root and the descendants reaped down the
    line, misses orphans such as a JVM nobody waits for)."""
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    peak, cpu = 0, {}
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _sample(_tree(proc.pid), cpu))
        time.sleep(0.05)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed:\n{log.read_text(errors='replace')[-3000:]}")
    return wall, peak / 1024, max(sum(cpu.values()), usage.ru_utime + usage.ru_stime)


def write_corpus(work: Path, docs) -> None:
    rows = [
        {
            "repo_name": d.repo_name,
            "directory_id": d.repo_name,
            "path": d.path,
            "blob_id": d.blob_id,
            "content_id": d.blob_id,
            "content": d.content,
            "language": "bench",
            "license_type": "permissive",
            "length": len(d.content),
            "length_bytes": len(d.content.encode()),
        }
        for d in docs
    ]
    table = pa.Table.from_pylist(rows, schema=INPUT)
    (work / "corpus" / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, work / "corpus" / "data" / "part-00000.parquet")
    adopt_outputs(work / "corpus")
    (work / "shards").mkdir(exist_ok=True)
    half = (len(rows) + 1) // 2
    for i, start in enumerate((0, half)):
        pq.write_table(table.slice(start, half), work / "shards" / f"{i:05d}.parquet")


def numpy_signatures(hasher: MinHasher, hash_sets: list[np.ndarray], block_rows: int = 1024) -> np.ndarray:
    """The engine before the numba kernel (git show 27a2ca6:stackv2/dedup/minhash.py), kept to time it against:
    blocks of 1,024 shingles, ``np.multiply.outer(h, a) + b``, ``% p``, ``np.minimum.reduceat`` per document."""
    a, b, p = hasher.a.astype(np.uint64), hasher.b.astype(np.uint64), np.uint64(hasher.mod_prime)
    n = len(hash_sets)
    sig = np.full((n, hasher.num_perm), 0xFFFFFFFF, dtype=np.uint32)
    lengths = np.fromiter(map(len, hash_sets), dtype=np.int64, count=n)
    flat = np.concatenate([np.asarray(h, dtype=np.uint32) for h in hash_sets])
    owner = np.repeat(np.arange(n), lengths)
    for start in range(0, len(flat), block_rows):
        rows = owner[start : start + block_rows]
        permuted = np.multiply.outer(flat[start : start + block_rows].astype(np.uint64), a)
        permuted += b
        permuted %= p
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        docs = rows[starts]
        sig[docs] = np.minimum(sig[docs], np.minimum.reduceat(permuted, starts, axis=0))
    return sig


def python_shingle_hashes(content: str, ngram_size: int, min_length: int) -> np.ndarray:
    """The shingling before the numba kernels (git show c90c378:stackv2/dedup/shingle.py), kept to time it
    against: one Python string per n-gram, ``xxh32_intdigest`` per string, ``np.unique``."""
    hashes = np.fromiter(map(xxhash.xxh32_intdigest, ngrams(content, ngram_size, min_length)), dtype=np.uint32)
    return np.unique(hashes) if len(hashes) else np.empty(0, dtype=np.uint32)


def _interleaved(runs: dict, repeats: int) -> tuple[dict, dict]:
    """Last result and CPU seconds per repeat of each run, the runs taking turns."""
    results, times = {}, {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t = time.process_time()
            results[name] = run()
            times[name].append(round(time.process_time() - t, 3))
    return results, times


def engines(contents: list[str], repeats: int = 1) -> dict[str, object]:
    """CPU seconds (``time.process_time``, one list entry per repeat, engines interleaved) for: shingling + xxh32
    (the Python strings we used to build, ``shingle_hashes`` file by file, ``shingle_hash_sets`` per batch as
    ``udfs.dedup`` calls it; all must agree), the numpy signatures we used to compute, our numba kernel
    (``MinHasher``) and rensa's batched digests, all over the same shingle hashes. Numba kernels are warmed up
    first so JIT time is not counted."""
    from rensa import RMinHash

    cfg = DedupConfig()
    n, m = cfg.ngram_size, cfg.min_length
    shingle_hashes("warm up the kernels", n, m)
    results, out = _interleaved(
        {
            "python_shingle_s": lambda: [python_shingle_hashes(c, n, m) for c in contents],
            "numba_shingle_s": lambda: [shingle_hashes(c, n, m) for c in contents],
            "numba_batch_shingle_s": lambda: shingle_hash_sets(contents, n, m),
        },
        repeats,
    )
    sets = results["python_shingle_s"]
    for name in ("numba_shingle_s", "numba_batch_shingle_s"):
        assert all(map(np.array_equal, sets, results[name])), f"{name} hashes differ from the Python shingles'"
    hasher = MinHasher(cfg.num_perm, cfg.seed)
    hasher.signatures(sets[:1])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.uint64)
    flat = np.concatenate(sets).astype(np.uint64)
    digest = RMinHash.digest_matrix_from_flat_token_hashes
    runs = {
        "numpy_minhash_s": lambda: numpy_signatures(hasher, sets),
        "numba_minhash_s": lambda: hasher.signatures(sets),
        "rensa_minhash_s": lambda: digest(flat, offsets, cfg.num_perm, cfg.seed),
    }
    results, times = _interleaved(runs, repeats)
    assert (results["numpy_minhash_s"] == results["numba_minhash_s"]).all(), "numba signatures differ from numpy's"
    out.update(times)
    out["shingles"] = int(offsets[-1])
    out["files"] = len(contents)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--systems", nargs="+", default=["ours", "datatrove", "rensa", "datasketch"])
    ap.add_argument("--seed", type=int, default=0, help="patches of the corpus copies (0: the usual corpus)")
    ap.add_argument("--text-dedup-python", help="python of a separate venv with text-dedup installed")
    ap.add_argument(
        "--engines-only",
        type=Path,
        metavar="CORPUS_DIR",
        help="only time the signature engines (3 repeats) on CORPUS_DIR/data/*.parquet, e.g. "
        "work/bench-dedup/x16/corpus",
    )
    args = ap.parse_args()
    if args.engines_only:
        contents = [
            c
            for f in sorted((args.engines_only / "data").glob("*.parquet"))
            for c in pq.read_table(f, columns=["content"]).column("content").to_pylist()
        ]
        print(json.dumps({**engines(contents, repeats=3), "load1": round(os.getloadavg()[0], 2)}))
        return
    results = []
    for k in args.scales:
        work = WORK / (f"x{k}-s{args.seed}" if args.seed else f"x{k}")
        subprocess.run(["rm", "-rf", str(work)], check=True)
        work.mkdir(parents=True)
        docs = scaled(k, args.seed)
        write_corpus(work, docs)
        contents = [d.content for d in docs]
        mb = sum(len(c.encode()) for c in contents) / 1e6
        t0 = time.monotonic()
        labels = truth.components(len(docs), truth.true_pairs(truth.shingle_sets(contents)))
        print(f"x{k}: {len(docs)} docs, {mb:.1f} MB, truth in {time.monotonic() - t0:.0f}s", flush=True)
        if k == 1:
            print("engines:", engines(contents), flush=True)
        systems = [(s, [sys.executable, "-m", "bench.dedup.systems", s, str(work)]) for s in args.systems]
        if args.text_dedup_python:
            systems.append(
                ("text-dedup", [sys.executable, "-m", "bench.dedup.textdedup", args.text_dedup_python, str(work)])
            )
        for name, cmd in systems:
            wall, peak, cpu = measure(cmd, work / f"{name}.log")
            predicted = dict(json.loads((work / f"{name}.json").read_text()))
            row = {
                "scale": k,
                "docs": len(docs),
                "mb": round(mb, 1),
                "seed": args.seed,
                "system": name,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "load1": round(os.getloadavg()[0], 1),
                "peak_mib": round(peak),
                **truth.score(labels, predicted),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    scales = "-".join(f"x{k}" for k in args.scales) + (f"-s{args.seed}" if args.seed else "")
    (WORK / f"results-{scales}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
