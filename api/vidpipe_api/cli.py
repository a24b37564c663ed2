"""Admin commands: `python -m vidpipe_api.cli create-key --owner NAME [--admin]`, `revoke-key`.

The key is printed once and only its hash is stored, so a lost key is revoked and replaced.
"""

from __future__ import annotations

import argparse
import sys

from vidpipe_api.auth import key_document
from vidpipe_api.db import Database, now
from vidpipe_api.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vidpipe_api.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-key", help="create an API key and print it once")
    create.add_argument("--owner", required=True, help="owner name (lowercase label value)")
    create.add_argument("--admin", action="store_true", help="may read global stats")
    revoke = sub.add_parser("revoke-key", help="revoke a key by its id (the part after vpk_)")
    revoke.add_argument("key_id")
    sub.add_parser("list-keys", help="list key ids and owners (never the keys)")
    args = parser.parse_args(argv)

    db = Database(get_settings())
    try:
        if args.command == "create-key":
            try:
                key, doc = key_document(args.owner, args.admin, now())
            except ValueError as exc:
                parser.error(str(exc))
            db.keys.insert_one(doc)
            sys.stdout.write(key + "\n")
        elif args.command == "revoke-key":
            result = db.keys.update_one({"_id": args.key_id}, {"$set": {"revoked_at": now()}})
            if result.matched_count == 0:
                sys.stderr.write(f"no key {args.key_id}\n")
                return 1
        else:
            for doc in db.keys.find({}, {"hash": 0}).sort("created_at", 1):
                state = "revoked" if doc.get("revoked_at") else "active"
                admin = " admin" if doc.get("admin") else ""
                sys.stdout.write(f"{doc['_id']}\t{doc['owner']}\t{state}{admin}\n")
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
