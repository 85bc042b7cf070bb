"""Command line of the HTTP edge: API keys.

``python -m api keys create ID --scopes predict+read``   a new key, printed once, with its entry
``python -m api keys entry ID --scopes read < key.txt``  the entry of an existing key read from standard input

The key is printed (once) and stored nowhere; the entry (``id:sha256hex:scopes``)
goes into ``FUTURISYS_API_KEYS``, comma-separated with the others.
Exit codes: 0 done, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys

from api.keys import SCOPES, ApiKey, check_key_id, create_key, digest_of, parse_scopes

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m api", description="The service's HTTP edge.")
    groups = parser.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="API keys").add_subparsers(dest="command", required=True)
    for name, summary in (("create", "create a key: print it once, with the entry to configure"),
                          ("entry", "print the entry of an existing key (read from standard input)")):
        command = keys.add_parser(name, help=summary)
        command.add_argument("key_id", metavar="ID", help="the key's id, recorded in traces and the read log")
        command.add_argument("--scopes", required=True, help=f"scopes joined by + among {', '.join(SCOPES)}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    arguments = _parser().parse_args(argv)
    try:
        scopes = parse_scopes(arguments.scopes)
        if arguments.command == "create":
            key, entry = create_key(arguments.key_id, scopes)
            print(f"key (shown once, stored nowhere; give it to the client): {key}")
        else:
            presented = sys.stdin.readline().strip()
            if not presented:
                raise ValueError("no key on standard input")
            entry = ApiKey(check_key_id(arguments.key_id), digest_of(presented), scopes)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"entry for FUTURISYS_API_KEYS: {entry.entry()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
