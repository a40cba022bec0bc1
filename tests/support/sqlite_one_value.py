"""A SQLite database holding one value (table t, column v): what the put-back tests make as the restored database and
as its kept-aside copy, and read back to tell which one is in place."""

import sqlite3


def make_db(path, value):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    conn.commit()
    conn.close()


def read_db(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT v FROM t").fetchone()[0]
    finally:
        conn.close()
