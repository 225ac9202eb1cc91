"""Opt-out on a released dataset: ``stackv2 optout apply | check | verify`` (pyarrow only, no Spark).

* ``apply``: removes every row the registry matches from the shards listed in each product's ``manifest.json``
  (``stackv2.release``: a release folder holds one folder per product; a product folder alone works too),
  rewriting only the shards that change. In a file-level product, where no released file holds a removed file's
  content any more, the best remaining duplicate that is not itself opted out and may be released (walking its
  near-duplicate cluster by rank, each blob's exact duplicates in the exact-dedup order) is promoted from the
  dedup stages' rejected rows (``promotion_sources``) and added to a shard of its language. Repository-level
  products lose the repositories' rows and get no promotion (a promoted file would have to pass the training
  filters, PII redaction and composition first). New shards are written beside the old ones, then one journal
  commits the renames and the new manifests. With ``--work`` the content-bearing tables of the work folder are
  purged too (their ``_stats.json`` recounted). An audit report (JSON) lists per request the repositories and
  files removed, the shards touched and the promotions.
* ``check USERNAME``: the repositories of a user or organisation in each product of a release, with file counts.
* ``verify``: scans every Parquet file of the release (listed or not), the content-bearing work tables, and the
  tokenized output's metadata, and fails when any row of an opted-out repository remains or when the manifest
  does not describe the files on disk.

The decisions (what a match is, which member is promoted, where it goes) are in docs/optout.md.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from stackv2.atomic import temp_path, write_json
from stackv2.dedup import EXACT_DUPLICATE, NEAR_DUPLICATE, NON_PERMISSIVE
from stackv2.dedup.rank import EXACT_ORDER, GH_PERMISSIVE, NOASSERTION
from stackv2.optout.registry import Matcher, Registry, load_registry, owners
from stackv2.release import layout as rel
from stackv2.release import products as products_mod
from stackv2.schema import RELEASE
from stackv2.stats import StageStats
from stackv2.workdir import DATA, OPTOUT_AUDIT, tokens_dir

#: The commit record of an ``apply`` in progress (new shards -> their places, and the manifest to write).
JOURNAL = ".optout-journal.json"
#: Columns read to decide which rows a shard loses (the others are read only for shards that change).
ID_COLUMNS = ("repo_name", "github_id", "path", "blob_id")
#: ``stackv2.dedup.rank.EXACT_ORDER`` as pyarrow sort keys (nulls last, as the dedup stage sorts).
_EXACT_SORT = [(c, "descending" if desc else "ascending", "at_end") for c, desc in EXACT_ORDER]
_SEP = "\x00"
Key = tuple[str, str, str]


def _key(table: pa.Table) -> pa.ChunkedArray:
    """One string per row identifying a file: repo_name, path, blob_id."""
    return pc.binary_join_element_wise(table["repo_name"], table["path"], table["blob_id"], _SEP)


def _split(key: str) -> Key:
    repo, path, blob = key.split(_SEP)
    return repo, path, blob


def _read(path: Path, columns: Iterable[str]) -> pa.Table | None:
    """The given columns of a Parquet file (those it has), or None when it has no ``repo_name``."""
    names = pq.read_schema(path).names
    if "repo_name" not in names:
        return None
    return pq.read_table(path, columns=[c for c in columns if c in names])


def _folder(shard: str) -> str:
    """``data/<Language>`` of a file-level shard path."""
    return shard.rsplit("/", 1)[0]


def products(release: Path) -> list[Path]:
    """The product folders of a release (its folders holding a manifest), or the folder itself when it is one."""
    if (release / rel.MANIFEST).exists():
        return [release]
    found = sorted(p for p in release.iterdir() if (p / rel.MANIFEST).exists()) if release.is_dir() else []
    if not found:
        raise FileNotFoundError(f"{release}: no {rel.MANIFEST} in it or in its folders: not a release")
    return found


def _manifests(release: Path) -> dict[str, dict[str, Any]]:
    """Product name (its folder, relative to ``release``; "." for a lone product) -> its manifest."""
    return {folder.relative_to(release).as_posix(): rel.read_manifest(folder) for folder in products(release)}


def _shard_id(product: str, shard: str) -> str:
    """A shard's path relative to the release folder."""
    return shard if product == "." else f"{product}/{shard}"


@dataclass(frozen=True)
class PromotionSources:
    """Where a file-level product's removed files find their replacements."""

    #: The near-dedup clusters table (members by rank), or None: only exact duplicates replace a file.
    clusters: Path | None
    #: Tables of rejected rows that may be promoted (their ``exact_duplicate``/``near_duplicate`` rows).
    rejected: tuple[Path, ...]


def promotion_sources(product: str, work: Path) -> PromotionSources | None:
    """The work tables a product's promotions come from (None: the product gets none)."""
    exact = work / "exact_dedup" / "rejected"
    if product == products_mod.THE_STACK_V2:
        return PromotionSources(None, (exact,))
    if product == products_mod.THE_STACK_V2_DEDUP:
        return PromotionSources(work / "near_dedup" / "clusters", (work / "near_dedup" / "rejected", exact))
    return None


# ------------------------------------------------------------------------------------------------------ apply


@dataclass
class Promotion:
    #: None when the removed file was in no near-duplicate cluster (an exact duplicate replaces it).
    cluster_id: str | None
    request: str
    removed: dict[str, str]
    promoted: dict[str, Any]
    shard: str


@dataclass
class ApplyPlan:
    """What ``apply`` will change, computed before anything is written."""

    #: shard -> rows it loses: (repo_name, path or None, blob_id or None, request id)
    removals: dict[str, list[tuple[str, str | None, str | None, str]]] = field(default_factory=dict)
    promotions: list[Promotion] = field(default_factory=list)
    #: shard -> promoted rows (schema.RELEASE) it gains
    additions: dict[str, list[pa.Table]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def shards(self) -> list[str]:
        return sorted(set(self.removals) | set(self.additions))


def _scan_removals(release: Path, shards: list[str], matcher: Matcher) -> dict[str, list]:
    out: dict[str, list] = {}
    for shard in shards:
        t = _read(release / shard, ID_COLUMNS)
        if t is None:
            continue
        req = matcher.match_table(t)
        hit = pc.is_valid(req)
        if not pc.any(hit).as_py():
            continue
        t = t.append_column("_request", req).filter(hit)
        cols = [
            t[c].to_pylist() if c in t.column_names else [None] * t.num_rows
            for c in ("repo_name", "path", "blob_id", "_request")
        ]
        out[shard] = list(zip(*cols, strict=True))
    return out


def _with_gh_permissive(table: pa.Table) -> pa.Table:
    """``rank.GH_PERMISSIVE`` as ``pipelines/stages/dedup.py`` derives it: null without a GitHub license, else whether
    the row is permissive by it (not NOASSERTION)."""
    gha = table["gha_license_id"]
    value = pc.and_(pc.equal(table["license_type"], "permissive"), pc.not_equal(gha, NOASSERTION))
    return table.append_column(GH_PERMISSIVE, pc.if_else(pc.is_null(gha), pa.scalar(None, pa.bool_()), value))


def _candidates(
    rejected: tuple[Path, ...], blobs: set[str], removed: dict[str, tuple[str, str]], matcher: Matcher
) -> dict[str, list[tuple[str, pa.Table]]]:
    """blob -> [(key, full row)] of the files holding it that may be promoted, best first: the file the cluster
    table ranks (rejected ``near_duplicate``), then its exact duplicates in the exact-dedup order. Only rows that
    may be released at all (not ``non_permissive``, with a language: in reference mode a rejected exact duplicate
    may be either)."""
    files = [str(f) for d in rejected if d.is_dir() for f in sorted(d.glob("*.parquet"))]
    wanted = pc.field("blob_id").isin(pa.array(sorted(blobs), pa.string())) & pc.field("reason").isin(
        [EXACT_DUPLICATE, NEAR_DUPLICATE]
    )
    eligible = (pc.field("license_type") != NON_PERMISSIVE) & pc.is_valid(pc.field("language"))
    full = ds.dataset(files, format="parquet").to_table(filter=wanted & eligible & (pc.field("language") != ""))
    full = full.append_column("_key", _key(full))
    full = full.filter(pc.invert(pc.is_in(full["_key"], value_set=pa.array(sorted(removed), pa.string()))))
    full = full.filter(pc.is_null(matcher.match_table(full)))  # an opted-out file is never promoted
    full = _with_gh_permissive(full).append_column("_exact", pc.equal(full["reason"], EXACT_DUPLICATE))
    full = full.sort_by([("blob_id", "ascending"), ("_exact", "ascending"), *_EXACT_SORT])
    out: dict[str, list[tuple[str, pa.Table]]] = defaultdict(list)
    for i, (blob, key) in enumerate(zip(full["blob_id"].to_pylist(), full["_key"].to_pylist(), strict=True)):
        out[blob].append((key, full.slice(i, 1)))
    return out


def _plan_promotions(
    plan: ApplyPlan, release: Path, shard_bytes: dict[str, int], sources: PromotionSources, matcher: Matcher
) -> None:
    """Replace every removed file whose content no released file holds any more by the best eligible duplicate.

    A removed file's group is its near-duplicate cluster (its blobs in rank order) or, outside any cluster, its
    own blob. A group with no blob left in the release gets the first eligible file found walking its blobs in
    rank order, each blob's holders best first (see ``_candidates``).
    """
    removed: dict[str, tuple[str, str]] = {}  # key -> (shard, request)
    for shard, rows in plan.removals.items():
        for repo, path, blob, req in rows:
            if path is not None:
                removed[_SEP.join((repo, path, blob))] = (shard, req)
    if not removed:
        return
    plan.warnings += [f"no {d}: its rows cannot replace removed files" for d in sources.rejected if not d.is_dir()]
    if not any(d.is_dir() for d in sources.rejected):
        return
    removed_blobs = {_split(k)[2] for k in removed}
    groups: dict[tuple[str | None, str], list[str]] = {}  # (cluster_id, first blob) -> blobs in rank order
    clusters_dir = sources.clusters
    if clusters_dir is not None and clusters_dir.is_dir():
        clusters = ds.dataset(clusters_dir, format="parquet")
        hit = clusters.to_table(filter=pc.field("blob_id").isin(pa.array(sorted(removed_blobs))))
        members = clusters.to_table(filter=pc.field("cluster_id").isin(pc.unique(hit["cluster_id"])))
        for m in members.sort_by([("cluster_id", "ascending"), ("rank", "ascending")]).to_pylist():
            groups.setdefault((m["cluster_id"], ""), []).append(m["blob_id"])
    elif clusters_dir is not None:
        plan.warnings.append(f"no {clusters_dir}: only exact duplicates can replace removed files")
    clustered = {b for blobs in groups.values() for b in blobs}
    groups.update({(None, b): [b] for b in sorted(removed_blobs - clustered)})
    all_blobs = {b for blobs in groups.values() for b in blobs}
    candidates = _candidates(sources.rejected, all_blobs, removed, matcher)
    cand_repos = pa.array(sorted({_split(k)[0] for c in candidates.values() for k, _ in c}), pa.string())

    # Blobs still released after the removals, and the shard already holding each candidate repository's files.
    present: set[str] = set()
    repo_shard: dict[tuple[str, str], str] = {}
    for shard in sorted(shard_bytes):
        t = pq.read_table(release / shard, columns=["repo_name", "path", "blob_id"])
        keep = pc.invert(pc.is_in(_key(t), value_set=pa.array(sorted(removed), pa.string())))
        blobs = t["blob_id"].filter(keep)
        present.update(blobs.filter(pc.is_in(blobs, value_set=pa.array(sorted(all_blobs)))).to_pylist())
        for repo in pc.unique(t["repo_name"].filter(pc.is_in(t["repo_name"], value_set=cand_repos))).to_pylist():
            repo_shard.setdefault((repo, _folder(shard)), shard)

    gone_by_blob = {_split(k)[2]: k for k in sorted(removed)}
    for (cluster_id, _), blobs in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[1][0])):
        if present.intersection(blobs) or not removed_blobs.intersection(blobs):
            continue
        gone = next(gone_by_blob[b] for b in blobs if b in gone_by_blob)
        gone_shard, request = removed[gone]
        repo, path, blob = _split(gone)
        winner = next((c for b in blobs for c in candidates.get(b, [])), None)
        if winner is None:
            if cluster_id is not None:
                plan.warnings.append(f"cluster {cluster_id}: no member left to promote after removing {repo}/{path}")
            continue
        key, full = winner
        row = full.select(RELEASE.names).cast(RELEASE)
        w_repo, w_path, w_blob = _split(key)
        folder = f"{rel.DATA_DIR}/{rel.language_dir(row['language'][0].as_py())}"
        target = (
            repo_shard.get((w_repo, folder))
            or (gone_shard if _folder(gone_shard) == folder else None)
            or min(
                (s for s in shard_bytes if _folder(s) == folder),
                key=lambda s: (shard_bytes[s], s),
                default=f"{folder}/{rel.shard_name(0, 1)}",
            )
        )
        repo_shard.setdefault((w_repo, folder), target)
        shard_bytes.setdefault(target, 0)
        plan.additions.setdefault(target, []).append(row)
        plan.promotions.append(
            Promotion(
                cluster_id,
                request,
                {"repo_name": repo, "path": path, "blob_id": blob, "shard": gone_shard},
                {
                    "repo_name": w_repo,
                    "path": w_path,
                    "blob_id": w_blob,
                    "language": row["language"][0].as_py(),
                    "reason": full["reason"][0].as_py(),
                },
                target,
            )
        )


def _write_options(meta: pq.FileMetaData) -> dict[str, Any]:
    """Write a rewritten file like the original: codec, row-group size, and Spark's INT96 timestamps where the
    original has them (Spark cannot read the nanosecond timestamps pyarrow would write instead)."""
    if not meta.num_row_groups:
        return {"compression": "zstd"}
    first = meta.row_group(0)
    codec = first.column(0).compression.lower() if first.num_columns else "zstd"
    return {
        "compression": "none" if codec == "uncompressed" else codec,
        "row_group_size": max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)),
        "use_deprecated_int96_timestamps": any(
            meta.schema.column(i).physical_type == "INT96" for i in range(meta.num_columns)
        ),
    }


def _rewrite(path: Path, matcher: Matcher, additions: list[pa.Table]) -> Path:
    """Write the shard without its opted-out rows and with ``additions`` next to it; return the new file."""
    if path.exists():
        options = _write_options(pq.ParquetFile(path).metadata)
        table = pq.read_table(path)
        table = table.filter(pc.is_null(matcher.match_table(table)))
    else:
        table, options = RELEASE.empty_table(), {"compression": "zstd"}
    if additions:
        table = pa.concat_tables([table, *(a.cast(table.schema) for a in additions)])
        # Spark's ascending order (the shards stage sorts with it) puts nulls first.
        table = table.sort_by([(k, "ascending", "at_start") for k in rel.SORT_KEY if k in table.column_names])
    tmp = temp_path(path)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, tmp, **options)
    return tmp


def _content_tables(work: Path, exclude: Iterable[Path]) -> list[tuple[Path, list[Path]]]:
    """Work tables that hold file contents of repositories: (table folder, its Parquet files)."""
    skip = [p.resolve() for p in exclude]
    out = []
    for table_dir in sorted(p for p in work.glob("*/*") if p.is_dir()):
        if any(table_dir.resolve().is_relative_to(s) for s in skip):
            continue
        files = sorted(table_dir.glob("*.parquet"))
        if files and {"repo_name", "content"} <= set(pq.read_schema(files[0]).names):
            out.append((table_dir, files))
    return out


def _recount(table_dir: Path, files: list[Path], purged: int) -> None:
    """Rewrite the stage's ``_stats.json`` from the table as it will be (``files``), so it keeps adding up."""
    stats_path = table_dir.parent / "_stats.json"
    if not stats_path.exists() or table_dir.name not in ("data", "rejected"):
        return
    stats = StageStats.load(stats_path)
    if table_dir.name == "data":
        stats.rows_out = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    else:
        reasons: Counter[str] = Counter()
        for f in files:
            reasons.update(pq.read_table(f, columns=["reason"])["reason"].to_pylist())
        stats.rejected = dict(sorted(reasons.items()))
    stats.rows_in = stats.rows_out + stats.rows_rejected
    done = stats.extra.setdefault("optout_purged", {})
    done[table_dir.name] = done.get(table_dir.name, 0) + purged
    stats.save(stats_path)


def _purge_work(work: Path, release: Path, matcher: Matcher) -> dict[str, int]:
    """Remove opted-out rows from the work folder's content-bearing tables, table by table: new part files first,
    then the stage's recounted ``_stats.json``, then the renames (an interrupted purge is finished by a rerun)."""
    purged: dict[str, int] = {}
    for table_dir, files in _content_tables(work, [release, tokens_dir(work)]):
        moves, n = [], 0
        for f in files:
            hit = pc.is_valid(matcher.match_table(_read(f, ("repo_name", "github_id"))))
            if pc.any(hit).as_py():
                n += pc.sum(hit.cast(pa.int64())).as_py()
                moves.append((_rewrite(f, matcher, []), f))
        if not n:
            continue
        purged[table_dir.relative_to(work).as_posix()] = n
        replaced = {f: tmp for tmp, f in moves}
        _recount(table_dir, [replaced.get(f, f) for f in files], n)
        for tmp, f in moves:
            os.replace(tmp, f)
    return purged


def _plan_product(plan: ApplyPlan, release: Path, product: str, manifest: dict, work: Path | None, m: Matcher) -> None:
    """Add one product's removals and promotions to ``plan``, with shard paths relative to the release folder."""
    folder = release / product
    shard_bytes = {s["path"]: s["bytes"] for s in manifest["shards"]}
    local = ApplyPlan(removals=_scan_removals(folder, sorted(shard_bytes), m))
    sources = promotion_sources(folder.resolve().name, work) if work is not None else None
    if sources is not None:
        _plan_promotions(local, folder, shard_bytes, sources, m)
    plan.removals.update({_shard_id(product, k): v for k, v in local.removals.items()})
    plan.additions.update({_shard_id(product, k): v for k, v in local.additions.items()})
    for promo in local.promotions:
        promo.shard = _shard_id(product, promo.shard)
        promo.removed["shard"] = _shard_id(product, promo.removed["shard"])
        plan.promotions.append(promo)
    plan.warnings += [f"{product}: {w}" for w in local.warnings]


def plan_apply(registry: Registry, release: Path, work: Path | None = None) -> ApplyPlan:
    matcher = Matcher(registry)
    plan = ApplyPlan()
    for product, manifest in _manifests(release).items():
        _plan_product(plan, release, product, manifest, work, matcher)
    return plan


def _audit(
    registry: Registry, plan: ApplyPlan, release: Path, work: Path | None, purged: dict[str, int]
) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {
        r.id: {
            **r.summary(),
            "repos": Counter(),
            "files_removed": 0,
            "repo_rows_removed": 0,
            "shards_touched": set(),
            "promotions": [],
        }
        for r in registry.requests
    }
    for shard, rows in plan.removals.items():
        for repo, path, _blob, req in rows:
            a = per[req]
            a["shards_touched"].add(shard)
            if path is None:
                a["repo_rows_removed"] += 1
            else:
                a["files_removed"] += 1
                a["repos"][repo] += 1
    for p in plan.promotions:
        per[p.request]["promotions"].append(asdict(p))
        per[p.request]["shards_touched"].add(p.shard)
    requests = [
        {**a, "repos": dict(sorted(a["repos"].items())), "shards_touched": sorted(a["shards_touched"])}
        for a in per.values()
    ]
    return {
        "registry": registry.path,
        "registry_sha256": registry.sha256,
        "release": str(release),
        "work": str(work) if work else None,
        "files_removed": sum(a["files_removed"] for a in requests),
        "repo_rows_removed": sum(a["repo_rows_removed"] for a in requests),
        "promotions": len(plan.promotions),
        "shards_touched": plan.shards,
        "work_purged": purged,
        "warnings": plan.warnings,
        "requests": requests,
    }


def _commit(release: Path) -> None:
    """Finish the change recorded in the journal, if any: rename the new shards, then write the manifests.

    The journal is written once every new shard exists, so a run killed at any later point is completed by the
    next ``apply`` (or by this call), and a run killed before it leaves the release untouched.
    """
    journal = release / JOURNAL
    if not journal.exists():
        return
    todo = json.loads(journal.read_text())
    for shard in todo["shards"]:
        if temp_path(release / shard).exists():
            os.replace(temp_path(release / shard), release / shard)
    for product, manifest in todo["manifests"].items():
        write_json(release / product / rel.MANIFEST, manifest, indent=2)
    journal.unlink()


def _record(manifest: dict[str, Any], registry: Registry) -> None:
    """Note in a manifest which registry was applied (once per registry)."""
    applied = manifest.setdefault("optout", [])
    if not any(a["registry_sha256"] == registry.sha256 for a in applied):
        latest = max((r.date for r in registry.requests), default=None)
        applied.append(
            {
                "registry_sha256": registry.sha256,
                "requests": len(registry.requests),
                "latest_request_date": latest.isoformat() if latest else None,
            }
        )


def apply(
    registry_path: str | Path,
    release: str | Path,
    work: str | Path | None = None,
    report: str | Path | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Remove opted-out rows from a release's products (and its work folder); return and write the audit report.

    The registry is validated and the whole change planned before the first byte is written; new shards are all
    written before any replaces its original. Rerunning with the same registry changes nothing. ``dry_run``:
    return the audit of the plan (release changes only) and write nothing.
    """
    registry = load_registry(registry_path)
    release = Path(release).resolve()
    work = Path(work).resolve() if work else None
    if dry_run:
        return {**_audit(registry, plan_apply(registry, release, work), release, work, {}), "dry_run": True}
    _commit(release)  # an earlier apply that was interrupted after its commit point
    plan = plan_apply(registry, release, work)
    matcher = Matcher(registry)
    manifests = _manifests(release)
    entries = {p: {s["path"]: s for s in m["shards"]} for p, m in manifests.items()}
    written: list[Path] = []
    try:
        for shard in plan.shards:
            tmp = _rewrite(release / shard, matcher, plan.additions.get(shard, []))
            written.append(tmp)
            product = next(p for p in manifests if p == "." or shard.startswith(f"{p}/"))
            local = shard if product == "." else shard.removeprefix(f"{product}/")
            size, rows = tmp.stat().st_size, pq.ParquetFile(tmp).metadata.num_rows
            entries[product][local] = asdict(rel.ShardEntry(local, rows, size, rel.sha256_file(tmp)))
    except BaseException:
        for tmp in written:
            tmp.unlink(missing_ok=True)
        raise
    for product, manifest in manifests.items():
        manifest["shards"] = [entries[product][p] for p in sorted(entries[product])]
        _record(manifest, registry)
    write_json(release / JOURNAL, {"shards": plan.shards, "manifests": manifests})
    _commit(release)

    purged = _purge_work(work, release, matcher) if work else {}
    if work and (stale := _stale_tokens(work, matcher)):
        plan.warnings.append(stale)
    audit = _audit(registry, plan, release, work, purged)
    out = Path(report) if report else (work or release.parent) / OPTOUT_AUDIT / f"audit-{registry.sha256[:16]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, audit, indent=2, default=str)
    audit["report"] = str(out)
    return audit


# ------------------------------------------------------------------------------------------------------ check


def check(username: str, release: str | Path) -> dict[str, dict[str, int]]:
    """``Am I in The Stack``: per product, the file count of each repository of ``username`` (case-insensitive)."""
    release = Path(release)
    out: dict[str, dict[str, int]] = {}
    for product, manifest in _manifests(release).items():
        counts: Counter[str] = Counter()
        for shard in sorted(s["path"] for s in manifest["shards"]):
            names = pq.read_schema(release / product / shard).names
            t = pq.read_table(release / product / shard, columns=[c for c in ("repo_name", "num_files") if c in names])
            mine = pc.equal(owners(t["repo_name"]), username.lower())
            files = t["num_files"] if "num_files" in names else pa.array([1] * t.num_rows, pa.int64())
            for repo, n in zip(t["repo_name"].filter(mine).to_pylist(), files.filter(mine).to_pylist(), strict=True):
                counts[repo] += n
        if counts:
            out[product] = dict(sorted(counts.items()))
    return out


# ----------------------------------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    #: {"file", "repo_name", "request", "rows"} per opted-out repository found in a file.
    leaks: list[dict[str, Any]] = field(default_factory=list)
    #: What could not be verified, or a manifest that does not match the files.
    problems: list[str] = field(default_factory=list)
    files_scanned: int = 0
    rows_scanned: int = 0

    @property
    def ok(self) -> bool:
        return not self.leaks and not self.problems

    def exit_code(self) -> int:
        return 1 if self.leaks else 2 if self.problems else 0


def _scan(report: VerifyReport, matcher: Matcher, name: str, table: pa.Table) -> None:
    report.files_scanned += 1
    report.rows_scanned += table.num_rows
    req = matcher.match_table(table)
    hit = pc.is_valid(req)
    if pc.any(hit).as_py():
        found = Counter(zip(table["repo_name"].filter(hit).to_pylist(), req.filter(hit).to_pylist(), strict=True))
        report.leaks += [
            {"file": name, "repo_name": repo, "request": r, "rows": n} for (repo, r), n in sorted(found.items())
        ]


def _token_metadata(tokens: Path) -> Iterable[tuple[Path, pa.Table]]:
    """Tables naming the files inside tokenized documents: Parquet files with ``repo_name`` in the tokens folder,
    and the ``tokenize`` stage's per-file table beside it (``<work>/tokenize/data`` beside the
    tokens folder, ``schema.TOKENIZED_FILES``)."""
    for f in [*sorted(tokens.rglob("*.parquet")), *sorted((tokens.parent / DATA).glob("*.parquet"))]:
        t = _read(f, ("repo_name", "github_id", "shard"))
        if t is not None:
            yield f, t


def _stale_tokens(work: Path, matcher: Matcher) -> str | None:
    """Token files cannot be edited row by row: say which ones still hold opted-out files, if any."""
    hits, shards = 0, set()
    for _, t in _token_metadata(tokens_dir(work)) if tokens_dir(work).is_dir() else ():
        hit = pc.is_valid(matcher.match_table(t))
        hits += pc.sum(hit).as_py() or 0
        if "shard" in t.column_names:
            shards.update(t["shard"].filter(hit).to_pylist())
    if not hits:
        return None
    return (
        f"tokenized output holds {hits} opted-out files (token shards {sorted(shards)}): remove "
        f"{work / 'tokenize'} and rerun the tokenize stage"
    )


def verify(
    registry_path: str | Path, release: str | Path, work: str | Path | None = None, tokens: str | Path | None = None
) -> VerifyReport:
    """Prove no opted-out row remains anywhere we can read (see the module docstring)."""
    matcher = Matcher(load_registry(registry_path))
    release = Path(release)
    report = VerifyReport()
    if (release / JOURNAL).exists():
        report.problems.append(f"{release / JOURNAL}: an interrupted apply; run apply again to finish it")
    try:
        for folder in products(release):
            report.problems += [f"{folder.name} manifest: {p}" for p in rel.verify_release(folder)]
    except FileNotFoundError as e:
        report.problems.append(str(e))
    for f in sorted(release.rglob("*.parquet")):
        t = _read(f, ("repo_name", "github_id"))
        if t is not None:
            _scan(report, matcher, str(f), t)
    if work is not None:
        work = Path(work)
        for _table_dir, files in _content_tables(work, [release, tokens_dir(work)]):
            for f in files:
                _scan(report, matcher, str(f), _read(f, ("repo_name", "github_id")))
    if tokens is None and work is not None and tokens_dir(work).is_dir():
        tokens = tokens_dir(work)
    if tokens is not None:
        found = False
        for f, t in _token_metadata(Path(tokens)):
            found = True
            _scan(report, matcher, str(f), t)
        if not found:
            report.problems.append(
                f"{tokens}: no metadata naming the repositories of the tokenized documents "
                "(Parquet with repo_name); the tokens cannot be verified"
            )
    return report
