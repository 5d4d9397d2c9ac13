#!/usr/bin/env python3
"""Runs every statement the ClickHouse store sent during the test suite
(logged by FLAMESHIFT_CLICKHOUSE_SQL_LOG, one a line; inserts carry their
first row inline) on a current ClickHouse engine embedded by chdb, in a
fresh database, in the order they were sent. The tests ran them on
Debian's ClickHouse 18.16; this proves the same SQL runs on today's.

Usage: check-clickhouse-sql.py LOG
Exit 0 when every distinct statement ran, 1 otherwise (each failure
printed with ClickHouse's message).
"""
import sys

import chdb
from chdb import session


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        statements = [line.rstrip("\n") for line in f if line.strip()]
    if not statements:
        print("check-clickhouse-sql: the log is empty: did the ClickHouse tests run?", file=sys.stderr)
        return 1
    db = session.Session()
    version = db.query("SELECT version()", "CSV").data().strip().strip('"')
    db.query("CREATE DATABASE IF NOT EXISTS flameshift")
    db.query("USE flameshift")
    seen = set()
    failures = []
    for sql in statements:
        if sql in seen:
            continue
        seen.add(sql)
        try:
            db.query(sql, "JSONEachRow")
        except Exception as e:  # chdb raises ChdbError with ClickHouse's message
            failures.append((sql, str(e).splitlines()[0]))
    for sql, error in failures[:20]:
        print(f"FAILED on ClickHouse {version}: {sql[:300]}\n  {error}", file=sys.stderr)
    print(
        f"check-clickhouse-sql: {len(seen) - len(failures)} of {len(seen)} distinct statements "
        f"({len(statements)} sent) ran on ClickHouse {version} (chdb {chdb.__version__})"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
