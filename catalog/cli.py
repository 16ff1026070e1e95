"""`e2gan catalog ls | show | pull | verify | rm | gc` (also `python -m catalog ...`).

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
        help="list, show, pull, verify and clean an adapter catalog",
        description="Work on an adapter catalog: a local folder or s3://bucket/prefix. S3 endpoint "
        "and credentials come from E2GAN_S3_* environment variables.",
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

    ls = sub.add_parser("ls", parents=[where], help="list published adapters")
    ls.add_argument("concept", nargs="?", help="only this concept")
    ls.add_argument("--json", action="store_true", help="print the index entries as JSON")

    show = sub.add_parser("show", parents=[where], help="print one index entry as JSON")
    _select(show)

    pull = sub.add_parser("pull", parents=[where], help="download a version, checking every sha256")
    _select(pull)
    pull.add_argument("dest", type=Path, help="folder to write the adapter files into")

    verify = sub.add_parser("verify", parents=[where], help="recompute the sha256 of every stored file")
    verify.add_argument("concept", nargs="?", help="only this concept")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")

    rm = sub.add_parser("rm", parents=[where], help="remove a version, or every version with --all")
    _select(rm)
    rm.add_argument("--all", action="store_true", help="remove every version of the concept")

    gc = sub.add_parser("gc", parents=[where], help="prune old versions and delete abandoned uploads")
    gc.add_argument("--keep", type=int, help="versions kept per (base, concept); omit to keep all")
    gc.add_argument("--grace", type=float, help="seconds an unlisted upload is left alone (default 3600)")


def _select(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("concept", help="concept name")
    parser.add_argument("--version", "-v", help="version such as v3 (default: newest)")
    parser.add_argument("--base", help="base model digest (default: any)")


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


def _dispatch(cat: Catalog, args: argparse.Namespace) -> int:
    if args.action == "ls":
        entries = cat.versions(args.concept) if args.concept else cat.index()
        if args.json:
            print(json.dumps([e.model_dump(mode="json") for e in entries], indent=1))
        else:
            _print_table(entries_table(entries))
        return 0
    if args.action == "show":
        print(cat.show(args.concept, args.version, args.base).model_dump_json(indent=1))
        return 0
    if args.action == "pull":
        dest = cat.pull(args.concept, args.dest, version=args.version, base_digest=args.base)
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
        removed = cat.delete(args.concept, args.version, args.base)
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


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _OneLineParser(prog="python -m catalog", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
