"""`e2gan catalog init | push | ls | show | pull | verify | rm | gc | reindex` (also `python -m catalog`).

Exit codes: 0 done, 1 verify found damaged files, 2 bad input or a failed catalog operation
(one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from catalog import open_catalog
from catalog.core import Catalog, entries_table
from catalog.errors import CatalogError

DEFAULT_URI_ENV = "E2GAN_CATALOG"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `catalog` to a parent CLI; the parsed namespace carries `handler=run`."""
    parser = subparsers.add_parser(
        "catalog",
        help="create, push to, list, pull from, verify and clean an adapter catalog",
        description="Work on an adapter catalog: a local folder or s3://bucket/prefix. S3 endpoint "
        "and credentials come from E2GAN_S3_* environment variables; only `init` creates a bucket.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog",
        "-c",
        default=os.environ.get(DEFAULT_URI_ENV, "./adapter-catalog"),
        help=f"catalog URI (default ${DEFAULT_URI_ENV} or ./adapter-catalog)",
    )
    # `--catalog` is accepted after the action too (`e2gan catalog ls --catalog X`);
    # SUPPRESS keeps the value given before the action when it is not repeated.
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--catalog", "-c", default=argparse.SUPPRESS, help="catalog URI (as above)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    init = sub.add_parser("init", parents=[where], help="create the catalog (and its bucket): the only command that does")
    init.add_argument(
        "--guard",
        choices=["conditional", "lock"],
        default=None,
        help="conditional (default; If-None-Match/If-Match, refused when the server ignores them) or "
        "lock (lock objects, for S3 servers without conditional writes)",
    )
    init.add_argument("--reservation-ttl", type=float, default=3600.0, help="seconds a publish may take (default 3600)")

    push = sub.add_parser("push", parents=[where], help="publish an adapter folder trained elsewhere")
    push.add_argument("folder", type=Path, help="adapter folder with manifest.json (as distill writes it)")
    push.add_argument("--keep", type=int, help="keep this many versions of the series (keepVersions)")

    sub.add_parser("reindex", parents=[where], help="rebuild every series index from the version manifests")

    ls = sub.add_parser("ls", parents=[where], help="list published adapters")
    ls.add_argument("concept", nargs="?", help="only this concept")
    ls.add_argument("--json", action="store_true", help="print the index entries as JSON")

    show = sub.add_parser("show", parents=[where], help="print one index entry as JSON")
    _select(show)

    pull = sub.add_parser("pull", parents=[where], help="download a version, checking every sha256")
    _select(pull, "concept, base/concept/vN, or [base/]concept@sha256:<manifest digest>")
    pull.add_argument("dest", type=Path, help="folder to write the adapter files into")

    verify = sub.add_parser("verify", parents=[where], help="recompute the sha256 of every stored file")
    verify.add_argument("concept", nargs="?", help="only this concept")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")

    rm = sub.add_parser("rm", parents=[where], help="remove a version, or every version with --all")
    _select(rm)
    rm.add_argument("--all", action="store_true", help="remove every version of the concept")
    rm.add_argument("--owner", help="refuse to remove versions recorded under another owner")

    gc = sub.add_parser("gc", parents=[where], help="prune old versions and delete abandoned uploads")
    gc.add_argument("--keep", type=int, help="versions kept per (base, concept); omit to keep all")
    gc.add_argument(
        "--grace", type=float, help="seconds an uncommitted upload is left alone (default and minimum: the reservation TTL)"
    )


def _select(parser: argparse.ArgumentParser, what: str = "concept, or base/concept/vN") -> None:
    parser.add_argument("concept", help=what)
    parser.add_argument("--version", "-v", help="version such as v3 (default: latest, the highest number)")
    parser.add_argument("--base", help="base model digest (needed when the concept exists under several bases)")


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed `catalog` command; errors become one line and exit code 2."""
    try:
        cat = open_catalog(args.catalog)
        try:
            return _dispatch(cat, args)
        finally:
            cat.close()
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _entry(cat: Catalog, args: argparse.Namespace):  # noqa: ANN202 - IndexEntry
    if "/" in args.concept or "@" in args.concept:
        if args.version is not None:
            raise CatalogError(f"{args.action}: give the version in the address or with --version, not both")
        return cat.resolve(args.concept, args.base)
    return cat.show(args.concept, args.version, args.base)


def _dispatch(cat: Catalog, args: argparse.Namespace) -> int:
    if args.action == "init":
        guard = args.guard or ("lock" if os.environ.get("E2GAN_S3_INDEX_LOCK", "").strip() == "lock" else "conditional")
        cfg = cat.init(guard, reservation_ttl_s=args.reservation_ttl)
        print(f"catalog {cat.uri}: guard {cfg.guard}, reservation TTL {cfg.reservation_ttl_s:g} s")
        return 0
    cat.check_location()  # a missing bucket: one line, exit 2, nothing created
    if args.action == "push":
        from e2gan_api.manifest import MANIFEST_NAME, AdapterManifest

        try:
            manifest = AdapterManifest.model_validate_json((args.folder / MANIFEST_NAME).read_bytes())
        except FileNotFoundError:
            raise CatalogError(f"{args.folder}: no {MANIFEST_NAME}") from None
        except ValueError as exc:
            raise CatalogError(f"{args.folder / MANIFEST_NAME}: not a valid manifest ({type(exc).__name__})") from None
        if args.keep is not None and args.keep < 1:
            raise CatalogError("push: --keep must be at least 1")
        entry = cat.publish(
            args.folder, base_digest=manifest.base_model_digest, concept=manifest.concept, keep_versions=args.keep
        )
        print(f"PUBLISHED {entry.concept} {entry.version} {entry.uri} {entry.manifest_digest}")
        return 0
    if args.action == "reindex":
        print(f"reindexed {cat.reindex()} versions")
        return 0
    if args.action == "ls":
        entries = cat.versions(args.concept) if args.concept else cat.index()
        if args.json:
            print(json.dumps([e.model_dump(mode="json") for e in entries], indent=1))
        else:
            _print_table(entries_table(entries))
        return 0
    if args.action == "show":
        print(_entry(cat, args).model_dump_json(indent=1))
        return 0
    if args.action == "pull":
        if "@sha256:" in args.concept:
            name, _, digest = args.concept.partition("@")
            base, _, concept = name.rpartition("/")
            dest = cat.pull(concept, args.dest, base_digest=base or args.base, manifest_digest=digest)
        else:
            entry = _entry(cat, args)
            dest = cat.pull(entry.concept, args.dest, version=entry.version, base_digest=entry.base_model_digest)
        print(dest)
        return 0
    if args.action == "verify":
        report = cat.verify(args.concept)
        if args.json:
            print(report.model_dump_json(indent=1))
        else:
            for p in report.problems:
                print(f"BAD {p.concept} {p.version} {p.file}: {p.problem}")
            print(
                f"{report.versions} versions, {report.files} files, {report.bytes} bytes checked: "
                f"{'ok' if report.ok else f'{len(report.problems)} problems'}"
            )
        return 0 if report.ok else 1
    if args.action == "rm":
        if args.version is None and not args.all:
            raise CatalogError("rm: give --version VERSION, or --all to remove every version")
        removed = cat.delete(args.concept, args.version, args.base, owner=args.owner)
        if not removed:
            raise CatalogError(f"rm: no published adapter {args.concept} {args.version or ''}".rstrip())
        for e in removed:
            print(f"removed {e.concept} {e.version}")
        return 0
    if args.action == "gc":
        if args.keep is not None and args.keep < 1:
            raise CatalogError("gc: --keep must be at least 1")
        report = cat.gc(keep=args.keep, grace_s=args.grace)
        print(
            f"pruned {len(report.pruned)} versions, deleted {len(report.orphans)} abandoned uploads, "
            f"dropped {report.reservations} expired reservations"
        )
        return 0
    raise CatalogError(f"unknown action {args.action!r}")


def _print_table(rows: list[dict[str, object]]) -> None:
    if not rows:
        print("(no adapters)")
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m catalog", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
