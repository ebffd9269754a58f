"""Copy an arena's votes from one vote store into another, e.g. from the SQLite file a single app
has kept into the PostgreSQL database that several replicas will share:

    python -m restoration.arena.copy_votes votes.db postgresql://arena@db.internal:5432/arena

Both ends are what RESTORATION_VOTES_DB takes. The target is migrated to the current schema and
must hold no votes yet: a copy adds nothing twice and overwrites nothing. Every vote keeps its id
(the public CSV's export cut counts by id), and the copy is one transaction: it lands whole or not
at all. What is only alive while the app runs (live pairs, per-minute counts) is not copied: stop
the app first, and start the replicas on the target when the command says it is done.
"""

import sys
from pathlib import Path

import sqlalchemy as sa

from restoration.arena.store import VoteStore, VoteStoreError, is_database_url
from restoration.arena.store_schema import votes
from restoration.cli import parser

LASTING = (votes,)  # the tables whose rows outlive a running app
BATCH = 5000


def copy_votes(source: VoteStore, target: VoteStore) -> dict[str, int]:
    """Copy every row of the LASTING tables from `source` into `target` (which must have none of
    them yet); returns {table: rows copied}."""
    copied = {}
    with source._reading() as read, target.transaction() as tx:
        for table in LASTING:
            if tx.conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                raise VoteStoreError(f"{target.name} already holds {table.name}: copy into an empty store")
            rows = read.execution_options(yield_per=BATCH).execute(sa.select(table).order_by(table.c.id))
            copied[table.name] = 0
            for batch in rows.mappings().partitions(BATCH):
                tx.conn.execute(table.insert(), [dict(row) for row in batch])
                copied[table.name] += len(batch)
            if tx.dialect == "postgresql" and copied[table.name]:
                # ids were given, so the column's sequence has not moved: new votes continue after them
                tx.conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                        f"(SELECT max(id) FROM {table.name}))"))
    return copied


def main(argv=None):
    p = parser("python -m restoration.arena.copy_votes", __doc__)
    p.add_argument("source", help="the vote store to copy from: a SQLite file or a postgresql:// URL")
    p.add_argument("target", help="the empty vote store to copy into: a SQLite file or a postgresql:// URL")
    args = p.parse_args(argv)
    if not is_database_url(args.source) and not Path(args.source).is_file():
        sys.exit(f"Nothing copied: {args.source} is not a vote store file (a SQLite file the app wrote)")
    try:
        source, target = VoteStore(args.source), VoteStore(args.target)
        copied = copy_votes(source, target)
        counts = {t.name: (source._scalar(sa.select(sa.func.count()).select_from(t)),
                           target._scalar(sa.select(sa.func.count()).select_from(t))) for t in LASTING}
    except VoteStoreError as e:
        sys.exit(f"Nothing copied: {e}")
    for name, n in copied.items():
        print(f"{name}: {n} rows copied from {source.name} to {target.name}; now {counts[name][1]} there, "
              f"{counts[name][0]} in the source")
    source.close()
    target.close()


if __name__ == "__main__":
    main()
