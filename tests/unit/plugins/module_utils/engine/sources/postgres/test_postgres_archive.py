"""Table-of-contents selection and bundle framing of PostgreSQL sets (no server needed)."""

import io

import pytest

from engine.core.errors import ConfigError, IntegrityError
from engine.sources.postgres.archive import ArchiveReader, bundle_header, list_file_text, parse_toc, select_entries


TOC = """;
; Archive created at 2026-11-23 06:46:59 UTC
;
3378; 1262 5 DATABASE - app app
6; 2615 16430 SCHEMA - s2 app
217; 1259 16390 TABLE public accounts app
218; 1259 16393 TABLE public branches app
220; 1259 16432 TABLE s2 t app
;\tdepends on: 6
219; 1259 16431 SEQUENCE s2 t_id_seq app
;\tdepends on: 220 6
3380; 0 0 SEQUENCE OWNED BY s2 t_id_seq app
;\tdepends on: 219
3214; 2604 16435 DEFAULT s2 t id app
;\tdepends on: 220 219 220
3369; 0 16390 TABLE DATA public accounts app
;\tdepends on: 217
3370; 0 16393 TABLE DATA public branches app
;\tdepends on: 218
3372; 0 16432 TABLE DATA s2 t app
;\tdepends on: 220
3219; 2606 16405 CONSTRAINT public accounts accounts_pkey app
;\tdepends on: 217
3221; 2606 16401 CONSTRAINT public branches branches_pkey app
;\tdepends on: 218
3217; 1259 16429 INDEX public ix_abal app
;\tdepends on: 217
3224; 2606 16438 FK CONSTRAINT s2 t t_v_fkey app
;\tdepends on: 220 218 3221
"""


def test_toc_selection_takes_dependents_and_skips_dangling_foreign_keys():
    entries = parse_toc(TOC)
    assert [(e.dump_id, e.desc, e.schema, e.tag) for e in entries[:3]] == [
        (3378, "DATABASE", "-", "app"), (6, "SCHEMA", "-", "s2"), (217, "TABLE", "public", "accounts")]
    ids, tables = select_entries(entries, tables=["accounts"])
    assert ids == [217, 3369, 3219, 3217] and tables == ["public.accounts"]
    ids, tables = select_entries(entries, tables=["s2.t"])
    assert ids == [6, 220, 219, 3380, 3214, 3372]  # schema (new database), sequence, default; no FK to branches
    ids = select_entries(entries, tables=["s2.t"], include_parents=False)[0]
    assert 6 not in ids
    ids, tables = select_entries(entries, tables=["t", "branches"])
    assert 3224 in ids and tables == ["public.branches", "s2.t"]
    ids, tables = select_entries(entries, schemas=["s2"])
    assert tables == ["s2.t"] and 3224 not in ids
    assert list_file_text(entries, [217, 3369]) == "217; 1259 16390 TABLE public accounts app\n" \
                                                   "3369; 0 16390 TABLE DATA public accounts app\n"
    with pytest.raises(ConfigError, match="not in this backup: nope, s9.x"):
        select_entries(entries, tables=["nope", "s9.x"])


def test_bundle_framing():
    archive = b"PGDMP" + b"\x01" * 5000
    plain = ArchiveReader(io.BytesIO(archive))
    assert plain.globals_sql is None and plain.read(1 << 20) + plain.read(1 << 20) == archive
    globals_sql = b"CREATE ROLE app;\n"
    bundle = ArchiveReader(io.BytesIO(bundle_header(globals_sql) + globals_sql + archive))
    assert bundle.globals_sql == globals_sql
    assert b"".join(iter(lambda: bundle.read(100), b"")) == archive
    with pytest.raises(IntegrityError, match="not a pg_dump custom archive"):
        ArchiveReader(io.BytesIO(b"garbage" * 10))
    with pytest.raises(IntegrityError, match="truncated"):
        ArchiveReader(io.BytesIO(bundle_header(globals_sql) + globals_sql[:5]))
