#!/usr/bin/env python3
"""Runs every statement the ClickHouse store sent during the test suite
(logged by FLAMESHIFT_CLICKHOUSE_SQL_LOG, one a line; inserts carry their
first row inline) on a current ClickHouse engine embedded by chdb, in a
fresh database, in the order they were sent: once over one server's
tables, once over a cluster's `Distributed` tables. The tests ran them on
Debian's ClickHouse 18.16; this proves the same SQL runs on today's.

Usage: check-clickhouse-sql.py LOG
Exit 0 when every distinct statement ran, 1 otherwise (each failure
printed with ClickHouse's message).
"""
import os
import re
import sys
import tempfile

import chdb
from chdb import session

# The cluster the tests' two-shard statements name, made here of one
# local shard (chdb has no network shards): the `Distributed` tables, and
# every insert and query through them, run on today's engine too.
CLUSTER_CONFIG = """<clickhouse><tcp_port>9000</tcp_port><remote_servers><two_shards>
<shard><replica><host>127.0.0.1</host><port>9000</port></replica></shard>
</two_shards></remote_servers></clickhouse>"""

DISTRIBUTED = re.compile(r"ENGINE = Distributed\((\w+), (\w+), ")


def is_distributed_alter(sql):
    """A column added to a `Distributed` table (its shards' tables get
    theirs with the sort key: `... MODIFY ORDER BY`)."""
    return sql.startswith("ALTER TABLE") and "ADD COLUMN" in sql and "MODIFY ORDER BY" not in sql


def for_one_server(sql):
    return "_shard" not in sql and not is_distributed_alter(sql)


def for_cluster(sql):
    # ALTERs of one server's tables (sort keys, retention's partitions)
    # have their cluster twins on `X_shard`.
    return not sql.startswith("ALTER TABLE") or "_shard" in sql or is_distributed_alter(sql)


def run(db, database, statements, failures):
    db.query(f"USE {database}")
    for sql in statements:
        try:
            db.query(sql, "JSONEachRow")
        except Exception as e:  # chdb raises ChdbError with ClickHouse's message
            failures.append((database, sql, str(e).splitlines()[0]))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        statements = [line.rstrip("\n") for line in f if line.strip()]
    if not statements:
        print("check-clickhouse-sql: the log is empty: did the ClickHouse tests run?", file=sys.stderr)
        return 1
    distinct = list(dict.fromkeys(statements))
    # One server's tables go to `one`; a cluster's (`X_shard` and the
    # `Distributed` `X` over it) to `sharded`, made first there so that
    # the plain `CREATE TABLE IF NOT EXISTS X` that follows is a no-op.
    sharded_ddl = [
        DISTRIBUTED.sub(r"ENGINE = Distributed(\1, sharded, ", sql)
        for sql in distinct
        if sql.startswith("CREATE TABLE") and ("_shard" in sql)
    ]
    plain_ddl = [sql for sql in distinct if sql.startswith("CREATE TABLE") and "_shard" not in sql]
    # Migrations' column additions next, before any statement that uses the
    # columns (the log interleaves databases at different stages).
    added = [sql for sql in distinct if sql.startswith("ALTER TABLE") and "ADD COLUMN" in sql]
    rest = [sql for sql in distinct if not sql.startswith("CREATE TABLE") and sql not in added]
    work = tempfile.mkdtemp(prefix="flameshift-chdb-")
    config = os.path.join(work, "config.xml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(CLUSTER_CONFIG)
    db = session.Session(f"{work}/data?config-file={config}")
    version = db.query("SELECT version()", "CSV").data().strip().strip('"')
    db.query("CREATE DATABASE IF NOT EXISTS one")
    db.query("CREATE DATABASE IF NOT EXISTS sharded")
    failures = []
    run(db, "sharded", sharded_ddl, failures)
    run(db, "one", plain_ddl, failures)
    run(db, "sharded", plain_ddl, failures)
    run(db, "one", [sql for sql in added if for_one_server(sql)], failures)
    run(db, "sharded", [sql for sql in added if for_cluster(sql)], failures)
    run(db, "one", [sql for sql in rest if for_one_server(sql)], failures)
    run(db, "sharded", [sql for sql in rest if for_cluster(sql)], failures)
    for database, sql, error in failures[:20]:
        print(f"FAILED on ClickHouse {version} ({database}): {sql[:300]}\n  {error}", file=sys.stderr)
    print(
        f"check-clickhouse-sql: {len(distinct)} distinct statements ({len(statements)} sent) replayed on "
        f"ClickHouse {version} (chdb {chdb.__version__}) over one server's tables and a cluster's, "
        f"{len(failures)} failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
