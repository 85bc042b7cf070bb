"""Command line of the registry.

    python -m registry import              # models/ → BentoML store (idempotent; trusted, complete versions)
    python -m registry list                # what the store holds, aliases, default, refusals
    python -m registry promote NAME:VERSION [--alias champion]   # pins its artifact, then moves the alias

The trusted manifest in force is ``FUTURISYS_TRUSTED_MANIFEST`` (default:
``registry/trusted_artifacts.json``); ``promote`` writes to it.
"""
from __future__ import annotations

import argparse
import sys

from registry.aliases import CHAMPION, promote
from registry.catalogue import ModelCatalogue
from registry.store import import_models
from registry.trust import TrustedManifest
from settings import settings


def main(argv: list[str] | None = None) -> int:
    """Run one registry command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m registry", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("import", help="import models/ into the BentoML model store")
    commands.add_parser("list", help="list the models of the store")
    promoting = commands.add_parser("promote", help="point an alias at a model version")
    promoting.add_argument("tag", help="name:version, as in models/<name>/<version>/")
    promoting.add_argument("--alias", default=CHAMPION)
    args = parser.parse_args(argv)

    manifest = TrustedManifest.read()
    if args.command == "import":
        report = import_models(settings.models_dir, manifest)
        print(f"imported: {', '.join(report.imported) or '-'}")
        print(f"already in the store: {', '.join(report.present) or '-'}")
        for refusal in report.refused:
            print(f"refused {refusal.tag}: {refusal.reason}", file=sys.stderr)
        return 1 if report.refused else 0
    if args.command == "promote":
        try:
            pinned = args.tag in manifest.digests
            aliases = promote(settings.models_dir, args.tag, args.alias)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not pinned:
            print(f"pinned {args.tag} in {manifest.path}")
        print(f"{args.alias} → {aliases[args.alias]}")
        return 0
    catalogue = ModelCatalogue.open(settings.models_dir, settings.default_model, manifest)
    print(f"{'model':<32} {'aliases':<16} {'threshold':>9} {'cv roc auc':>10}  default")
    for entry in catalogue.entries():
        auc = (entry.card.metrics.get("cv", {}).get("roc_auc_mean") if entry.card else None)
        threshold = entry.card.threshold if entry.card else float("nan")
        print(f"{entry.tag:<32} {','.join(entry.aliases) or '-':<16} {threshold:>9.3f} "
              f"{auc if auc is not None else float('nan'):>10.3f}  {'*' if entry is catalogue.default else ''}")
    for entry in catalogue.entries():
        if not entry.valid:
            print(f"invalid {entry.tag}: {entry.invalid_reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
