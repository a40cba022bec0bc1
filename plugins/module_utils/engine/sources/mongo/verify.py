"""Test restore of a MongoDB set: the set parsed end to end, without a server, and the documents per
collection compared with the manifest's ``verification.document_counts``. The set is walked by the same parser
mongo_restore uses (layout.py): for the tar layout (the built-in dumper) every member name, BSON framing and
metadata file is checked with mongo_restore's name and metadata policy, so a set the restore would refuse fails
here too; for a mongodump ``--archive`` the prelude is read as mongo_restore reads it, then every namespace block
is counted. The set is read once, as a stream; its sha256 is compared at the end, before the counts are judged.
Nothing of it is written anywhere or sent to a server."""

from ...core.errors import IntegrityError, LifeboatError
from ...core.streams import iter_chunks
from ...pipeline.restore import open_set
from .format import FORMAT_ARCHIVE, FORMAT_TAR
from .layout import parse_archive, parse_tar_layout

# The set is parsed as a stream: nothing goes to the scratch directory (kinds.verify_stages_to_scratch).
STAGES_TO_SCRATCH = False


def _drain(reader):
    """After a parse failure: read to the end so a damaged artifact reports its sha256 mismatch instead."""
    try:
        for _chunk in iter_chunks(reader):
            pass
    except IntegrityError as exc:
        if "sha256 mismatch" in exc.msg:
            raise
    except LifeboatError:
        pass


def test_restore(repository, job, backup_set, identity_file, scratch_dir, options):
    manifest = backup_set.manifest
    where = "set %s of job %s" % (backup_set.set_id, job)
    fmt = (manifest.get("source") or {}).get("format")
    if fmt not in (FORMAT_TAR, FORMAT_ARCHIVE):
        raise IntegrityError("%s records an unknown MongoDB format %r; upgrade the collection" % (where, fmt))
    with open_set(repository, job, backup_set, identity_file) as reader:
        try:
            if fmt == FORMAT_TAR:
                counts = parse_tar_layout(reader, where, bool((options or {}).get("allow_javascript")))
            else:
                counts = parse_archive(reader, where)
        except IntegrityError:
            _drain(reader)
            raise
        for _chunk in iter_chunks(reader):
            pass  # the end of the set: the sha256 is compared there, before the counts are judged
    report = {"document_counts": counts, "format": fmt}
    expected = (manifest.get("verification") or {}).get("document_counts")
    if expected is None:
        report["checked"] = {"document_counts": "not recorded in the manifest (made with verify: false)"}
        return report
    if not isinstance(expected, dict):
        raise IntegrityError("the manifest of %s is corrupted (verification.document_counts is not a count per "
                             "collection)" % where, report=report)
    report["checked"] = {"document_counts": {"expected": expected, "actual": counts}}
    wrong = {ns: (expected.get(ns), counts.get(ns)) for ns in sorted(set(expected) | set(counts))
             if expected.get(ns) != counts.get(ns)}
    report["document_counts_match"] = not wrong
    if wrong:
        raise IntegrityError("%s does not hold the documents its manifest recorded (collection: expected / found) %s; "
                             "do not rely on this set" % (where, ", ".join(
                                 "%s: %s / %s" % (ns, pair[0] if pair[0] is not None else "absent",
                                                  pair[1] if pair[1] is not None else "absent")
                                 for ns, pair in wrong.items())), report=report)
    return report
