"""Opt-out on a released dataset: ``stackv2 optout apply | check | verify`` (pyarrow only, no Spark).

* ``apply``: removes every row the registry matches (up to a cutoff date, ``--until``) from the shards listed in
  each product's ``manifest.json`` (``stackv2.release``: a release folder holds one folder per product; a product
  folder alone works too), rewriting only the shards that change. In a file-level product, where no released file
  holds a removed file's content any more, the best remaining duplicate that is not itself opted out and may be
  released is promoted from the dedup stages' rejected rows (``promotion_sources``); with the run's config, a file
  promoted into ``-dedup`` that passes the run's filter, PII and composition decisions joins its repository's row
  in the training products (``stackv2.optout.training``). With ``--work``: the token shards lose the removed
  repositories' documents and re-tokenize the repositories a promotion changed (``stackv2.tokenize.rewrite``), and
  every work table naming a requester is purged (``stackv2.optout.work``). Everything is staged first, then one
  journal commits it. An audit report (JSON) lists per request the repositories and files removed, the shards
  touched and the promotions.
* ``check USERNAME``: the repositories of a user or organisation in each product of a release, with file counts.
* ``verify``: scans every Parquet file of the release (listed or not), every table and text file of the work
  folder, and proves the token files hold exactly the documents their per-file table names; fails when any
  opted-out repository is named anywhere or when a manifest does not describe its files.

The release and work folders may be local or on an object store (``stackv2.storage``): every file is read and
written through a ``Location``, and the journal commits without renaming on a store (``_commit``). The decisions
(what a match is, which member is promoted, where it goes, where the run's config comes from) are in docs/optout.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from stackv2.atomic import write_json, write_text
from stackv2.config import RunConfig
from stackv2.dedup import EXACT_DUPLICATE, NEAR_DUPLICATE, NON_PERMISSIVE
from stackv2.dedup.rank import EXACT_ORDER, GH_PERMISSIVE, NOASSERTION
from stackv2.optout.registry import Matcher, Registry, Request, load_registry, owners
from stackv2.optout.training import TrainingRules
from stackv2.optout.work import (
    Leak,
    by_parts,
    manifest_after,
    scan_table,
    scan_text,
    stage_purge,
    table_files,
    text_files,
    work_tables,
    write_like,
)
from stackv2.release import layout as rel
from stackv2.release import products as products_mod
from stackv2.release.card import OPTOUT_HEADING, optout_statement
from stackv2.schema import RELEASE, RELEASE_REPOS, REPO_FIELDS, REPO_FILE
from stackv2.stats import StageStats
from stackv2.storage import Location, dataset, location, parquet_file, read_schema, read_table
from stackv2.swh.swhid import file_swhid
from stackv2.tokenize.rewrite import MANIFEST as TOKEN_MANIFEST
from stackv2.tokenize.rewrite import (
    TOKENIZER,
    TokenRewrite,
    check_shards,
    file_stats,
    plan_rewrite,
    shard_files,
    stage_rewrite,
)
from stackv2.tokenize.rewrite import read_manifest as read_token_manifest
from stackv2.tokenize.stream import FileRow
from stackv2.workdir import DATA, OPTOUT_AUDIT, STATS, SUCCESS, tokens_dir

#: The commit record of an ``apply`` in progress (staged files -> their places, and the JSON and text to write).
JOURNAL = ".optout-journal.json"
#: Where ``apply`` writes the new token shards before the journal moves them into the tokens folder.
TOKEN_STAGING = ".optout-staging"  # noqa: S105 - a folder name
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


def _read(path: Location, columns: Iterable[str]) -> pa.Table | None:
    """The given columns of a Parquet file (those it has), or None when it has no ``repo_name``."""
    names = read_schema(path).names
    if "repo_name" not in names:
        return None
    return read_table(path, columns=[c for c in columns if c in names])


def _folder(shard: str) -> str:
    """``data/<Language>`` of a file-level shard path."""
    return shard.rsplit("/", 1)[0]


def _root(where: str | os.PathLike | Location) -> Location:
    """The ``Location`` of a release or work folder given by the user (a local one with its symlinks resolved)."""
    loc = location(where)
    return location(Path(loc.path).resolve()) if loc.is_local else loc


def products(release: Location) -> list[Location]:
    """The product folders of a release (its folders holding a manifest), or the folder itself when it is one."""
    if (release / rel.MANIFEST).exists():
        return [release]
    found = [p for p in release.folders() if (p / rel.MANIFEST).exists()]
    if not found:
        raise FileNotFoundError(f"{release}: no {rel.MANIFEST} in it or in its folders: not a release")
    return found


def _product_dir(release: Location, product: str) -> Location:
    """The folder of a product named as ``_manifests`` names it."""
    return release if product == "." else release / product


def _product_name(release: Location, product: str) -> str:
    """A product's own name (its folder's name)."""
    return release.name if product == "." else Path(product).name


def _manifests(release: Location) -> dict[str, dict[str, Any]]:
    """Product name (its folder, relative to ``release``; "." for a lone product) -> its manifest."""
    return {
        "." if folder == release else folder.relative_to(release): rel.read_manifest(folder)
        for folder in products(release)
    }


def _shard_id(product: str, shard: str) -> str:
    """A shard's path relative to the release folder."""
    return shard if product == "." else f"{product}/{shard}"


@dataclass(frozen=True)
class PromotionSources:
    """Where a file-level product's removed files find their replacements."""

    #: The near-dedup clusters table (members by rank), or None: only exact duplicates replace a file.
    clusters: Location | None
    #: Tables of rejected rows that may be promoted (their ``exact_duplicate``/``near_duplicate`` rows).
    rejected: tuple[Location, ...]


def promotion_sources(product: str, work: Location) -> PromotionSources | None:
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
    #: Training products: {"admitted": bool, "reason": why not, "shards": the repository rows it joined}.
    training: dict[str, Any] | None = None


@dataclass
class ApplyPlan:
    """What ``apply`` will change, computed before anything is written."""

    #: shard -> rows it loses: (repo_name, path or None, blob_id or None, request id)
    removals: dict[str, list[tuple[str, str | None, str | None, str]]] = field(default_factory=dict)
    promotions: list[Promotion] = field(default_factory=list)
    #: The promoted files' full rows (the dedup stage's annotated rows), in the order of ``promotions``.
    rows: list[pa.Table] = field(default_factory=list)
    #: shard -> rows it gains: promoted files (``schema.RELEASE``) or repositories' new files (``RELEASE_REPOS``)
    additions: dict[str, list[pa.Table]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def shards(self) -> list[str]:
        return sorted(set(self.removals) | set(self.additions))


def _scan_removals(release: Location, shards: list[str], matcher: Matcher) -> dict[str, list]:
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
    rejected: tuple[Location, ...], blobs: set[str], removed: dict[str, tuple[str, str]], matcher: Matcher
) -> dict[str, list[tuple[str, pa.Table]]]:
    """blob -> [(key, full row)] of the files holding it that may be promoted, best first: the file the cluster
    table ranks (rejected ``near_duplicate``), then its exact duplicates in the exact-dedup order. Only rows that
    may be released at all (not ``non_permissive``, with a language: in reference mode a rejected exact duplicate
    may be either)."""
    files = [f for d in rejected for f in d.files(recursive=False) if f.suffix == ".parquet"]
    wanted = pc.field("blob_id").isin(pa.array(sorted(blobs), pa.string())) & pc.field("reason").isin(
        [EXACT_DUPLICATE, NEAR_DUPLICATE]
    )
    eligible = (pc.field("license_type") != NON_PERMISSIVE) & pc.is_valid(pc.field("language"))
    full = dataset(files).to_table(filter=wanted & eligible & (pc.field("language") != ""))
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
    plan: ApplyPlan, release: Location, shard_bytes: dict[str, int], sources: PromotionSources, matcher: Matcher
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
        clusters = ds.dataset(clusters_dir.path, format="parquet", filesystem=clusters_dir.fs)
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
        t = read_table(release / shard, columns=["repo_name", "path", "blob_id"])
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
                plan.warnings.append(
                    f"cluster {cluster_id}: no member left to promote after removing a file of {repo}"
                )
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
        plan.rows.append(full)
        plan.promotions.append(
            Promotion(
                cluster_id,
                request,
                # the audit names the requester's repository and blob, never its file paths
                {"repo_name": repo, "blob_id": blob, "shard": gone_shard},
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


def _merge_repos(table: pa.Table, additions: list[pa.Table]) -> pa.Table:
    """A repository-level shard with new files merged into their repositories' rows (a new row for a repository
    the shard lacks): ``files`` sorted by path, ``num_files`` recounted, rows in ``REPO_SORT_KEY`` order."""
    add = pa.concat_tables([a.cast(table.schema) for a in additions])

    def keys(t: pa.Table) -> pa.ChunkedArray:
        return pc.binary_join_element_wise(pc.fill_null(t["repo_name"], ""), pc.fill_null(t["snapshot_id"], ""), _SEP)

    hit = pc.is_in(keys(table), value_set=pc.unique(keys(add)))
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for r in [*table.filter(hit).to_pylist(), *add.to_pylist()]:
        k = (r["repo_name"], r["snapshot_id"])
        if k in merged:
            merged[k]["files"] += r["files"]
        else:
            merged[k] = r
    for r in merged.values():
        r["files"].sort(key=lambda f: f["path"])
        r["num_files"] = len(r["files"])
    out = pa.concat_tables([table.filter(pc.invert(hit)), pa.Table.from_pylist(list(merged.values()), table.schema)])
    return out.sort_by([(k, "ascending", "at_start") for k in rel.REPO_SORT_KEY])


def _rewrite(path: Location, matcher: Matcher, additions: list[pa.Table], schema: pa.Schema = RELEASE) -> Location:
    """Write the shard without its opted-out rows and with ``additions`` next to it; return the new file."""
    table = read_table(path) if path.exists() else schema.empty_table()
    table = table.filter(pc.is_null(matcher.match_table(table)))
    if additions and "files" in table.column_names:
        table = _merge_repos(table, additions)
    elif additions:
        table = pa.concat_tables([table, *(a.cast(table.schema) for a in additions)])
        # Spark's ascending order (the shards stage sorts with it) puts nulls first.
        table = table.sort_by([(k, "ascending", "at_start") for k in rel.SORT_KEY if k in table.column_names])
    return write_like(path, table)


def _plan_product(
    plan: ApplyPlan, release: Location, product: str, manifest: dict, work: Location | None, m: Matcher
) -> None:
    """Add one product's removals and promotions to ``plan``, with shard paths relative to the release folder."""
    folder = _product_dir(release, product)
    shard_bytes = {s["path"]: s["bytes"] for s in manifest["shards"]}
    local = ApplyPlan(removals=_scan_removals(folder, sorted(shard_bytes), m))
    sources = promotion_sources(_product_name(release, product), work) if work is not None else None
    if sources is not None:
        _plan_promotions(local, folder, shard_bytes, sources, m)
    plan.removals.update({_shard_id(product, k): v for k, v in local.removals.items()})
    plan.additions.update({_shard_id(product, k): v for k, v in local.additions.items()})
    for promo in local.promotions:
        promo.shard = _shard_id(product, promo.shard)
        promo.removed["shard"] = _shard_id(product, promo.removed["shard"])
        plan.promotions.append(promo)
    plan.rows += local.rows
    plan.warnings += [f"{product}: {w}" for w in local.warnings]


def _repo_shards(folder: Location, shards: Iterable[str], repos: set[str]) -> dict[tuple[str, str], str]:
    """(repo_name, snapshot_id) -> the shard of a repository-level product holding its row, for ``repos``."""
    out: dict[tuple[str, str], str] = {}
    for shard in sorted(shards):
        t = read_table(folder / shard, columns=["repo_name", "snapshot_id"])
        t = t.filter(pc.is_in(t["repo_name"], value_set=pa.array(sorted(repos), pa.string())))
        for r in t.to_pylist():
            out.setdefault((r["repo_name"], r["snapshot_id"]), shard)
    return out


def _plan_training(
    plan: ApplyPlan, release: Location, manifests: dict[str, dict], rules: TrainingRules, m: Matcher
) -> None:
    """Files promoted into ``the-stack-v2-dedup`` that the build's filter, PII and composition rules admit join
    their repository's row in the training products (a new row for a repository they lack)."""
    by_name = {_product_name(release, p): p for p in manifests}
    targets = [by_name[n] for n in (products_mod.TRAIN_FULL, products_mod.TRAIN_SMOL) if n in by_name]
    promoted = [
        (p, full)
        for p, full in zip(plan.promotions, plan.rows, strict=True)
        if p.shard.startswith(f"{by_name.get(products_mod.THE_STACK_V2_DEDUP)}/")
    ]
    if not targets or not promoted:
        return
    repos = {p.promoted["repo_name"] for p, _ in promoted}
    kept, dropped = rules.groups(sorted(repos))
    holders = {
        t: _repo_shards(_product_dir(release, t), [s["path"] for s in manifests[t]["shards"]], repos) for t in targets
    }
    for promo, full in promoted:
        row = full.to_pylist()[0]
        decision = rules.admit(row, kept, dropped)
        promo.training = {"admitted": decision.reason is None, "reason": decision.reason, "shards": []}
        if decision.reason is not None:
            continue
        repo_row = {**{f.name: row.get(f.name) for f in REPO_FIELDS}}
        file = {f.name: row.get(f.name) for f in REPO_FILE}
        file["content"] = decision.content
        new = pa.Table.from_pylist([{**repo_row, "files": [file], "num_files": 1}], RELEASE_REPOS)
        for t in targets:
            if Path(t).name == products_mod.TRAIN_SMOL and not decision.smol:
                continue
            entries = {s["path"]: s["bytes"] for s in manifests[t]["shards"]}
            shard = holders[t].get((row["repo_name"], row["snapshot_id"])) or min(
                entries, key=lambda s: (entries[s], s), default=f"{rel.DATA_DIR}/{rel.shard_name(0, 1)}"
            )
            holders[t].setdefault((row["repo_name"], row["snapshot_id"]), shard)
            plan.additions.setdefault(_shard_id(t, shard), []).append(new)
            promo.training["shards"].append(_shard_id(t, shard))


def plan_apply(
    registry: Registry, release: Location, work: Location | None = None, rules: TrainingRules | None = None
) -> ApplyPlan:
    matcher = Matcher(registry)
    plan = ApplyPlan()
    manifests = _manifests(release)
    for product, manifest in manifests.items():
        _plan_product(plan, release, product, manifest, work, matcher)
    if rules is not None:
        _plan_training(plan, release, manifests, rules, matcher)
    elif any(p.shard.startswith(f"{products_mod.THE_STACK_V2_DEDUP}/") for p in plan.promotions):
        plan.warnings.append(
            "no run config (--config): files promoted into the-stack-v2-dedup were not considered for the "
            "training products"
        )
    return plan


def _audit(
    registry: Registry,
    plan: ApplyPlan,
    release: Location,
    work: Location | None,
    purged: dict[str, int],
    ignored: Iterable[Request] = (),
    tokens: dict[str, Any] | None = None,
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
        per[p.request]["shards_touched"].update((p.training or {}).get("shards", []))
    requests = [
        {**a, "repos": dict(sorted(a["repos"].items())), "shards_touched": sorted(a["shards_touched"])}
        for a in per.values()
    ]
    cutoff = registry.honoured_until
    return {
        "registry": registry.path,
        "registry_sha256": registry.sha256,
        "cutoff": cutoff.isoformat() if cutoff else None,
        "ignored_after_cutoff": [r.summary() for r in ignored],
        "release": str(release),
        "work": str(work) if work else None,
        "files_removed": sum(a["files_removed"] for a in requests),
        "repo_rows_removed": sum(a["repo_rows_removed"] for a in requests),
        "promotions": len(plan.promotions),
        "shards_touched": plan.shards,
        "tokens": tokens or {},
        "work_purged": purged,
        "warnings": plan.warnings,
        "requests": requests,
    }


# ----------------------------------------------------------------------------------------------- the journal


@dataclass
class Journal:
    """An apply's commit record: files staged -> their places, then JSON and text files to write."""

    renames: list[tuple[Location, Location]] = field(default_factory=list)
    json: dict[Location, Any] = field(default_factory=dict)
    text: dict[Location, str] = field(default_factory=dict)
    #: Folders removed once committed (the token staging folder).
    cleanup: list[Location] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "renames": [[str(a), str(b)] for a, b in self.renames],
            "json": {str(k): v for k, v in self.json.items()},
            "text": {str(k): v for k, v in self.text.items()},
            "cleanup": [str(p) for p in self.cleanup],
        }

    def discard(self) -> None:
        """Remove what was staged (an apply that failed before its commit point)."""
        for tmp, _ in self.renames:
            tmp.delete()
        for p in self.cleanup:
            p.delete_tree()


def _commit(release: Location) -> None:
    """Finish the change recorded in the journal, if any: move the staged files over the files they replace, then
    write the manifests, stats, cards and the audit, then remove the staging folder and the journal.

    The journal is written once every new file exists (one upload on an object store, a rename on a disk): it is
    the commit point. A run killed at any later point is completed by the next ``apply`` (or by this call), and a
    run killed before it leaves every file as it was. Each step can be done again: a staged file still there is
    moved (again: on an object store a move is a copy, then a delete), one already moved is skipped, and the JSON
    and text files are whole writes of what the journal holds.
    """
    journal = release / JOURNAL
    if not journal.exists():
        return
    todo = json.loads(journal.read_text())
    for tmp, final in todo["renames"]:
        staged = location(tmp)
        if staged.exists():
            staged.move_or_copy(location(final))
    for path, obj in todo["json"].items():
        write_json(path, obj, indent=2, default=str)
    for path, text in todo["text"].items():
        write_text(path, text)
    for folder in todo["cleanup"]:
        location(folder).delete_tree()
    journal.delete()


def _record(manifest: dict[str, Any], registry: Registry) -> None:
    """Note in a manifest which registry was applied, up to which date (once per registry and cutoff)."""
    applied = manifest.setdefault("optout", [])
    cutoff = registry.honoured_until.isoformat() if registry.honoured_until else None
    if not any(a["registry_sha256"] == registry.sha256 and a.get("cutoff") == cutoff for a in applied):
        applied.append({"registry_sha256": registry.sha256, "requests": len(registry.requests), "cutoff": cutoff})
    manifest["cutoff"] = max((a["cutoff"] for a in applied if a.get("cutoff")), default=None)


def _card(folder: Location, manifest: dict[str, Any]) -> str | None:
    """The product's card with its opt-out statement saying the cutoff honoured (None: no card)."""
    card = folder / rel.CARD
    if not card.exists():
        return None
    text = card.read_text()
    head, sep, rest = text.partition(f"\n{OPTOUT_HEADING}\n\n")
    if not sep:
        return None
    _old, nxt, tail = rest.partition("\n\n## ")
    statement = optout_statement(None, manifest.get("cutoff"))
    return f"{head}{sep}{statement}{nxt}{tail}"


# -------------------------------------------------------------------------------------------------- staging


def _stage_release(
    journal: Journal, plan: ApplyPlan, release: Location, matcher: Matcher, registry: Registry
) -> dict[str, Location]:
    """Stage the changed shards, the new manifests and cards; return the staged file of each changed shard."""
    manifests = _manifests(release)
    entries = {p: {s["path"]: s for s in m["shards"]} for p, m in manifests.items()}
    staged: dict[str, Location] = {}
    for shard in plan.shards:
        product = next(p for p in manifests if p == "." or shard.startswith(f"{p}/"))
        repo_level = "files" in (
            read_schema(release / shard).names if (release / shard).exists() else plan.additions[shard][0].column_names
        )
        tmp = _rewrite(
            release / shard, matcher, plan.additions.get(shard, []), RELEASE_REPOS if repo_level else RELEASE
        )
        journal.renames.append((tmp, release / shard))
        staged[shard] = tmp
        local = shard if product == "." else shard.removeprefix(f"{product}/")
        size, rows = tmp.size(), parquet_file(tmp).metadata.num_rows
        entries[product][local] = asdict(rel.ShardEntry(local, rows, size, tmp.sha256()))
    for product, manifest in manifests.items():
        manifest["shards"] = [entries[product][p] for p in sorted(entries[product])]
        _record(manifest, registry)
        folder = _product_dir(release, product)
        journal.json[folder / rel.MANIFEST] = manifest
        card = _card(folder, manifest)
        if card is not None:
            journal.text[folder / rel.CARD] = card
    return staged


def _shards_rows(
    plan: ApplyPlan, release: Location, work: Location
) -> Callable[[Location, pa.Table], pa.Table] | None:
    """An edit of the shards stage's row table adding every promoted file of a file-level product (one row per
    product and file, with the ``shard`` holding it and its ``swhid``), to the part holding its repository's rows
    in that product (else the smallest part)."""
    rows_dir = work / "shards" / DATA
    files = table_files(rows_dir)
    if not plan.promotions or not files:
        return None
    names = {_product_name(release, p): p for p in _manifests(release)}
    product_of = {v: k for k, v in names.items()}
    new: list[tuple[str, str, pa.Table]] = []  # (product, repo, row)
    schema = read_schema(files[0])
    for promo, full in zip(plan.promotions, plan.rows, strict=True):
        product, shard = next(
            (product_of[p], promo.shard.removeprefix(f"{p}/"))
            for p in names.values()
            if p == "." or promo.shard.startswith(f"{p}/")
        )
        row = full.to_pylist()[0]
        swhid = file_swhid(row["content_id"], row["repo_url"], row["snapshot_id"], row["revision_id"], row["path"])
        out = {**{n: row.get(n) for n in schema.names}, "product": product, "shard": shard, "swhid": swhid}
        new.append((product, row["repo_name"], pa.Table.from_pylist([out], schema)))
    sizes = {f: parquet_file(f).metadata.num_rows for f in files}
    wanted = {(product, repo) for product, repo, _ in new}
    holder: dict[tuple[str, str], Location] = {}
    for f in files:
        t = read_table(f, columns=["product", "repo_name"])
        for key in zip(t["product"].to_pylist(), t["repo_name"].to_pylist(), strict=True):
            if key in wanted:
                holder.setdefault(key, f)
    smallest = min(files, key=lambda f: (sizes[f], f.name))
    home = {i: holder.get((product, repo), smallest) for i, (product, repo, _) in enumerate(new)}

    def edit(f: Location, table: pa.Table) -> pa.Table:
        mine = [row for i, (_, _, row) in enumerate(new) if home[i] == f]
        if not mine:
            return table
        out = pa.concat_tables([table, *mine])
        return out.sort_by([(k, "ascending", "at_start") for k in ("product", *rel.SORT_KEY)])

    return edit


def _token_repo_ids(release: Location, product: str | None) -> dict[str, int | None]:
    """repo_name -> github_id of the repositories of the tokenized product and of the notebook products, whose
    documents the token files hold too (the per-file table has no ids)."""
    notebooks = [
        p
        for p in _manifests(release)
        if Path(p).name in (products_mod.JUPYTER_SCRIPTS, products_mod.JUPYTER_STRUCTURED)
    ]
    out: dict[str, int | None] = {}
    for folder in ([product] if product else []) + notebooks:
        folder = _product_dir(release, folder)
        if not (folder / rel.MANIFEST).exists():
            continue
        for s in rel.read_manifest(folder)["shards"]:
            t = _read(folder / s["path"], ("repo_name", "github_id"))
            if t is not None and "github_id" in t.column_names:
                out.update(zip(t["repo_name"].to_pylist(), t["github_id"].to_pylist(), strict=True))
    return out


def _token_matches(files: pa.Table, ids: dict[str, int | None], matcher: Matcher) -> pa.ChunkedArray:
    """The request removing each per-file row's repository, with the repository's github id where known."""
    gid = pa.array([ids.get(r) for r in files["repo_name"].to_pylist()], pa.int64())
    return matcher.match(files["repo_name"], gid)


def _stage_token_shards(
    tokens: Location,
    manifest: dict[str, Any],
    rewrite: TokenRewrite,
    changed: dict[str, list[FileRow]],
    staging: Location,
) -> tuple[list[str], dict[str, Any]]:
    """``stage_rewrite`` on a token folder anywhere: it reads and writes local files (memory maps), so on an object
    store the shards it copies documents from are downloaded first and the shards it writes are uploaded under
    ``staging``. Returns the staged files (relative paths) and the new manifest."""
    if tokens.is_local:
        staged, new_manifest = stage_rewrite(tokens.local_path, manifest, rewrite, changed, staging.local_path)
        return [p.as_posix() for p in staged], new_manifest
    formats = manifest["formats"]
    needed = [TOKENIZER, *(p.as_posix() for n in rewrite.shards for p in shard_files(Path(), n, formats))]
    with tokens.local_tree(needed) as source, tempfile.TemporaryDirectory(prefix="stackv2-") as out:
        staged, new_manifest = stage_rewrite(source, manifest, rewrite, changed, Path(out))
        for p in staged:
            (staging / p.as_posix()).upload(Path(out) / p)
    return [p.as_posix() for p in staged], new_manifest


def _stage_tokens(
    journal: Journal,
    plan: ApplyPlan,
    release: Location,
    work: Location,
    staged: dict[str, Location],
    matcher: Matcher,
    registry: Registry,
) -> dict[str, Any] | None:
    """Stage the token shards without the removed repositories' documents and with the changed repositories'
    documents re-tokenized, the per-file table and the stage's stats to match (None: no token files to edit)."""
    tokens = tokens_dir(work)
    files_dir = work / "tokenize" / DATA
    if not (tokens / TOKEN_MANIFEST).exists() or not table_files(files_dir):
        return None
    manifest = read_token_manifest(tokens)
    product = manifest.get("tokenize", {}).get("product")
    parts = table_files(files_dir)
    tables = [read_table(f) for f in parts]
    files = pa.concat_tables(
        [t.append_column("_part", pa.array([i] * t.num_rows, pa.int64())) for i, t in enumerate(tables)]
    )
    product_dir = next((p for p in _manifests(release) if Path(p).name == product), None)
    drop = pc.is_valid(_token_matches(files, _token_repo_ids(release, product_dir), matcher))
    changed: dict[str, list[FileRow]] = {}
    for shard, tmp in staged.items():
        adds = plan.additions.get(shard, [])
        if product_dir is None or not shard.startswith(f"{product_dir}/") or not adds:
            continue
        repos = sorted({r for a in adds for r in a["repo_name"].to_pylist()})
        t = read_table(tmp, columns=["repo_name", "files"])
        for r in t.filter(pc.is_in(t["repo_name"], value_set=pa.array(repos, pa.string()))).to_pylist():
            changed.setdefault(r["repo_name"], []).extend(
                FileRow(r["repo_name"], f["path"], f["blob_id"], f["language"], f["content"]) for f in r["files"]
            )
    staging = tokens / TOKEN_STAGING
    staging.delete_tree()
    rewrite = plan_rewrite(manifest, files, drop, changed)
    staged_tokens, new_manifest = _stage_token_shards(tokens, manifest, rewrite, changed, staging)
    journal.cleanup.append(staging)
    journal.renames += [(staging / p, tokens / p) for p in staged_tokens]
    _record(new_manifest, registry)
    journal.json[tokens / TOKEN_MANIFEST] = new_manifest

    new_files = rewrite.files
    homes = pc.fill_null(new_files["_part"], min(range(len(parts)), key=lambda i: (tables[i].num_rows, i)))
    changed_parts = []
    for i, f in enumerate(parts):
        t = new_files.filter(pc.equal(homes, i)).drop_columns(["_part"])
        t = t.sort_by([("repo_name", "ascending"), ("path", "ascending")]).cast(tables[i].schema)
        if not t.equals(tables[i]):
            journal.renames.append((write_like(f, t), f))
            changed_parts.append(f)
    staged = {f: tmp for tmp, f in journal.renames if f in changed_parts}
    manifest = manifest_after(work / "tokenize", {DATA: staged}) if staged else None
    if manifest is not None:
        journal.json[work / "tokenize" / SUCCESS] = manifest
    stats_path = work / "tokenize" / STATS
    if changed_parts and stats_path.exists():
        stats = StageStats.load(stats_path)
        stats.rows_out = new_files.num_rows
        stats.rows_in = stats.rows_out + stats.rows_rejected
        stats.extra.update(file_stats(new_files))
        stats.extra["shards"] = len(new_manifest["shards"])
        purged = stats.extra.setdefault("optout_purged", {})
        purged[DATA] = purged.get(DATA, 0) + (pc.sum(drop.cast(pa.int64())).as_py() or 0)
        journal.json[stats_path] = stats.to_dict()
    return {
        "product": product,
        "documents_dropped": rewrite.documents_dropped,
        "retokenized": rewrite.retokenized,
        "added": rewrite.added,
        "shards_rewritten": sorted(rewrite.shards),
        "files_rows_removed": pc.sum(drop.cast(pa.int64())).as_py() or 0,
    }


def apply(
    registry_path: str | Path,
    release: str | os.PathLike | Location,
    work: str | os.PathLike | Location | None = None,
    report: str | os.PathLike | Location | None = None,
    dry_run: bool = False,
    until: dt.date | None = None,
    config: RunConfig | None = None,
) -> dict[str, Any]:
    """Remove opted-out rows from a release's products, and with ``work`` from every work table and the token
    files; return and write the audit report.

    ``until``: honour only the requests dated on or before it (the later ones are listed in the audit). ``config``:
    the run's config, for promotions into the training products (checked by the caller against the stages'
    config hashes). The registry is validated and the whole change planned and staged before the first byte is
    replaced; one journal then commits it. Rerunning with the same registry changes nothing. ``dry_run``: return
    the audit of the plan (release changes only) and write nothing.
    """
    registry, ignored = load_registry(registry_path).until(until)
    release = _root(release)
    work = _root(work) if work else None
    rules = TrainingRules(config, work) if config is not None and work is not None else None
    if dry_run:
        plan = plan_apply(registry, release, work, rules)
        return {**_audit(registry, plan, release, work, {}, ignored), "dry_run": True}
    _commit(release)  # an earlier apply that was interrupted after its commit point
    plan = plan_apply(registry, release, work, rules)
    matcher = Matcher(registry)
    journal = Journal()
    try:
        staged = _stage_release(journal, plan, release, matcher, registry)
        tokens, purged = None, {}
        if work is not None:
            tokens = _stage_tokens(journal, plan, release, work, staged, matcher, registry)
            handled = [release, tokens_dir(work)] + ([work / "tokenize" / DATA] if tokens is not None else [])
            edit = _shards_rows(plan, release, work)
            change = stage_purge(work, matcher, handled, {work / "shards" / DATA: edit} if edit else None)
            journal.renames += change.renames
            journal.json.update(change.stats)
            purged = change.purged
            if tokens is None and tokens_dir(work).is_dir():
                plan.warnings.append(
                    f"{tokens_dir(work)}: no token manifest or per-file table: token files not edited"
                )
        audit = _audit(registry, plan, release, work, purged, ignored, tokens)
        default = (work or release.parent) / OPTOUT_AUDIT / f"audit-{registry.sha256[:16]}.json"
        out = _root(report) if report else default
        changed = bool(plan.shards or purged or (tokens and tokens["shards_rewritten"]))
        if changed or not out.exists():
            journal.json[out] = audit
        write_json(release / JOURNAL, journal.to_dict())
    except BaseException:
        journal.discard()
        raise
    _commit(release)
    audit["report"] = str(out)
    return audit


# ------------------------------------------------------------------------------------------------------ check


def check(username: str, release: str | os.PathLike | Location) -> dict[str, dict[str, int]]:
    """``Am I in The Stack``: per product, the file count of each repository of ``username`` (case-insensitive)."""
    release = _root(release)
    out: dict[str, dict[str, int]] = {}
    for product, manifest in _manifests(release).items():
        counts: Counter[str] = Counter()
        folder = _product_dir(release, product)
        for shard in sorted(s["path"] for s in manifest["shards"]):
            names = read_schema(folder / shard).names
            t = read_table(folder / shard, columns=[c for c in ("repo_name", "num_files") if c in names])
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
    #: Token documents proven (accounted for by the per-file table, token for token).
    documents_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.leaks and not self.problems

    def exit_code(self) -> int:
        return 1 if self.leaks else 2 if self.problems else 0

    def add(self, leaks: Iterable[Leak], rows: int = 0) -> None:
        self.files_scanned += 1
        self.rows_scanned += rows
        self.leaks += [asdict(leak) for leak in leaks]


def _scan(report: VerifyReport, matcher: Matcher, name: str, table: pa.Table) -> None:
    req = matcher.match_table(table)
    hit = pc.is_valid(req)
    found = Counter(zip(table["repo_name"].filter(hit).to_pylist(), req.filter(hit).to_pylist(), strict=True))
    report.add((Leak(name, repo, r, n) for (repo, r), n in sorted(found.items())), table.num_rows)


def _verify_tokens(report: VerifyReport, matcher: Matcher, tokens: Location, release: Location) -> None:
    """The per-file table names no opted-out repository, the token files hold exactly the documents it names
    (``check_shards``), and no document's own ``<repo_name>`` header names one."""
    files_dir = tokens.parent / DATA
    parts = table_files(files_dir)
    if not (tokens / TOKEN_MANIFEST).exists() or not parts:
        report.problems.append(
            f"{tokens}: no token manifest or per-file table ({files_dir}) naming the repositories of the tokenized "
            "documents: the tokens cannot be verified"
        )
        return
    product = read_token_manifest(tokens).get("tokenize", {}).get("product")
    product_dir = next((p for p in _manifests(release) if Path(p).name == product), None) if product else None
    ids = _token_repo_ids(release, product_dir)
    tables = []
    for f in parts:
        t = read_table(f)
        tables.append(t)
        req = _token_matches(t, ids, matcher)
        hit = pc.is_valid(req)
        found = Counter(zip(t["repo_name"].filter(hit).to_pylist(), req.filter(hit).to_pylist(), strict=True))
        report.add((Leak(str(f), repo, r, n) for (repo, r), n in sorted(found.items())), t.num_rows)
    files = pa.concat_tables(tables)
    with tokens.local_tree() as local:  # the shards are memory-mapped: downloaded first from an object store
        problems, headers = check_shards(local, files)
    report.problems += [f"{tokens}: {p}" for p in problems]
    report.documents_checked += len(
        pc.unique(pc.binary_join_element_wise(files["shard"], pc.cast(files["document"], pa.string()), "\x00"))
    )
    if headers:
        names = pa.array([h[2] for h in headers], pa.string())
        for (shard, doc, name), r in zip(headers, matcher.match(names).to_pylist(), strict=True):
            if r is not None:
                report.leaks.append(asdict(Leak(f"{tokens}/{shard} document {doc}", name, r, 1)))
        named = {(s, d): n for s, d, n in headers}
        table_names = {
            (s, d): n
            for s, d, n in zip(
                files["shard"].to_pylist(), files["document"].to_pylist(), files["repo_name"].to_pylist(), strict=True
            )
        }
        report.problems += [
            f"{tokens}: {s} document {d}: its header names {n!r}, the per-file table {table_names.get((s, d))!r}"
            for (s, d), n in sorted(named.items())
            if table_names.get((s, d)) != n
        ]


def verify(
    registry_path: str | Path,
    release: str | os.PathLike | Location,
    work: str | os.PathLike | Location | None = None,
    tokens: str | os.PathLike | Location | None = None,
    until: dt.date | None = None,
) -> VerifyReport:
    """Prove no opted-out repository is named anywhere we can read (see the module docstring)."""
    registry, _ = load_registry(registry_path).until(until)
    matcher = Matcher(registry)
    release = _root(release)
    report = VerifyReport()
    if (release / JOURNAL).exists():
        report.problems.append(f"{release / JOURNAL}: an interrupted apply; run apply again to finish it")
    try:
        for folder in products(release):
            report.problems += [f"{folder.name} manifest: {p}" for p in rel.verify_release(folder)]
    except FileNotFoundError as e:
        report.problems.append(str(e))
    released = release.files()
    for f in sorted((f for f in released if f.suffix == ".parquet"), key=by_parts):
        t = _read(f, ("repo_name", "github_id"))
        if t is not None:
            _scan(report, matcher, str(f), t)
    texts = sorted((f for f in released if f.suffix in (".json", ".md")), key=by_parts)
    if work is not None:
        work = _root(work)
        tables = work_tables(work, [release, work / "tokenize" / DATA])
        for table in tables:
            for _f, n, leaks in scan_table(table, tables, matcher):
                report.add(leaks, n)
        seen = {f for t in tables for f in t.files}
        parquet = sorted((f for f in work.files() if f.suffix == ".parquet"), key=by_parts)
        for f in parquet:  # any other Parquet file naming repositories
            if f in seen or f.is_relative_to(release) or f.parent == work / "tokenize" / DATA:
                continue
            t = _read(f, ("repo_name", "github_id"))
            if t is not None:
                _scan(report, matcher, str(f), t)
        texts += text_files(work, [release])
        if tokens is None and tokens_dir(work).is_dir():
            tokens = tokens_dir(work)
    for p in texts:
        report.add(scan_text(p, matcher))
    if tokens is not None:
        _verify_tokens(report, matcher, _root(tokens), release)
    return report
