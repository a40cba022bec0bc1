"""The SQL lifeboat sends about a database's own tables: the facts of the server recorded in a manifest, exact
row counts (taken in the dump's snapshot, after a restore and after a test restore), the tables rewritten while a
dump ran, and the ANALYZE after a restore. `USER_SCHEMAS` is the one definition of "users' tables" they share.
"""

# Schemas that hold users' tables: not information_schema, and no name starting pg_ (reserved for the system:
# pg_catalog, pg_toast, pg_temp_N...). `n` is pg_namespace.
USER_SCHEMAS = "n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"

ROW_COUNTS_SQL = ("""
SELECT coalesce(json_object_agg(n.nspname || '.' || c.relname,
    (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
                                         false, true, '')))[1]::text::bigint), '{}'::json)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND """ + USER_SCHEMAS + """
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
""").strip()

# Run after ROW_COUNTS_SQL in the snapshot session: tables whose storage was replaced after the snapshot (ALTER
# TABLE that rewrites, TRUNCATE, VACUUM FULL, CLUSTER), with every ancestor whose count(*) takes in theirs. Such a
# change waits for pg_dump's lock, so the dump holds the rows as of the snapshot; but a count that ran after it
# read the new storage through the old snapshot and may have found none. pg_class as the snapshot saw it against
# pg_relation_filenode(), which reads the current catalog.
REWRITTEN_SQL = ("""
WITH RECURSIVE moved(oid) AS (
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND """ + USER_SCHEMAS + """
      AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid)
  UNION
    SELECT i.inhparent FROM pg_inherits i JOIN moved m ON i.inhrelid = m.oid)
SELECT coalesce(json_agg(n.nspname || '.' || c.relname ORDER BY n.nspname, c.relname), '[]'::json)
FROM moved m JOIN pg_class c ON c.oid = m.oid JOIN pg_namespace n ON n.oid = c.relnamespace
""").strip()
REWRITTEN_REASON = ("its storage, or a partition's or child table's, was replaced by another session (ALTER TABLE, "
                    "TRUNCATE, VACUUM FULL or CLUSTER) while the dump ran; a count in the dump's snapshot reads the "
                    "new storage and can find no rows, so none is recorded. The dump holds the rows as of the "
                    "snapshot")

# Appended to ROW_COUNTS_SQL after a parallel load: count only what the COPY tags cannot tell (a parent's
# count(*) includes its children's rows) and the tables the load did not report (their names go in %s).
COUNT_ONLY_PARENTS_AND = """
  AND (c.relkind = 'p' OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)
       OR NOT (n.nspname || '.' || c.relname) = ANY (ARRAY[%s]::text[]))"""

# ANALYZE of every table and materialized view outside the system schemas, one by one in one session. A bare
# ANALYZE also walks the catalogs, which a restore did not change, and for a non-superuser it logs a WARNING on
# the server for each shared catalog it has to skip (about fifty a restore). Partitions are covered by their
# parent, which recurses into them; foreign tables are left out, as a bare ANALYZE leaves them.
ANALYZE_USER_TABLES_SQL = ("""
DO $lifeboat$
DECLARE
    relation text;
BEGIN
    FOR relation IN
        SELECT format('%I.%I', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition AND """ + USER_SCHEMAS + """
        ORDER BY 1
    LOOP
        EXECUTE 'ANALYZE ' || relation;
    END LOOP;
END
$lifeboat$
""").strip()

SERVER_SQL = """
SELECT json_build_object('server_version', current_setting('server_version'),
                         'server_version_num', current_setting('server_version_num')::int,
                         'user', current_user, 'database', current_database(),
                         'encoding', pg_encoding_to_char(d.encoding), 'collate', d.datcollate, 'ctype', d.datctype)
FROM pg_database d WHERE d.datname = current_database()
""".strip()
