"""Names and metadata read from a MongoDB set are checked before the server is touched (issue #16)."""

import pytest
from bson.code import Code

from engine.core.errors import IntegrityError
from engine.sources.mongo.format import check_metadata, check_namespace
from engine.sources.mongo.layout import parse_member


def meta(**options):
    return {"indexes": [], "collectionName": "c", "type": "collection", "options": options}


@pytest.mark.parametrize("document", [
    meta(validator={"$or": [{"a": 1}, {"$and": [{"$where": "true"}]}]}),
    meta(validator={"$expr": {"$function": {"body": Code("function() { return true; }"), "args": [], "lang": "js"}}}),
    meta(validator={"f": Code("function() {}")}),
    {"indexes": [{"key": {"a": 1}, "name": "a", "partialFilterExpression": {"$where": "true"}}], "type": "collection"},
])
def test_server_side_javascript_is_refused_unless_allowed(document):
    with pytest.raises(IntegrityError) as caught:
        check_metadata(document, "db.c")
    assert "server-side JavaScript" in caught.value.msg and "allow_javascript" in caught.value.msg
    check_metadata(document, "db.c", allow_javascript=True)


@pytest.mark.parametrize("document, words", [
    (meta(storageEngine={"wiredTiger": {"configString": "x"}}), "storageEngine"),
    (meta(encryptedFields={"fields": []}), "encryptedFields"),
    ({"indexes": [{"key": {"a": 1}, "storageEngine": {}}]}, "storageEngine"),
    ({"indexes": [{"name": "no key"}]}, "without a key document"),
    ({"indexes": [], "collectionName": "other"}, "names another collection"),
    ({"type": "view", "options": {"pipeline": []}}, "without viewOn"),
    ({"type": "view", "options": {"viewOn": "system.users", "pipeline": []}}, "defines a view on"),
    ({"type": "collection", "options": {"pipeline": []}}, "not a view"),
    ({"type": "function"}, "has type"),
    ({"evil": 1}, "keys lifeboat does not write"),
    ([1, 2], "not a JSON object"),
])
def test_metadata_outside_what_lifeboat_writes_is_refused(document, words):
    with pytest.raises(IntegrityError) as caught:
        check_metadata(document, "db.c", allow_javascript=True)
    assert words in caught.value.msg and "nothing was changed" in caught.value.msg


def test_views_and_validators_are_reported():
    view = {"type": "view", "options": {"viewOn": "c2", "pipeline": [{"$match": {}}, {"$project": {"a": 1}}]}}
    assert check_metadata(dict(view, collectionName="c"), "db.c") == {"view_on": "db.c2", "pipeline_stages": 2}
    assert check_metadata(meta(validator={"$jsonSchema": {}}), "db.c") == {"validator": True}


def test_deep_nesting_does_not_exhaust_the_stack():
    value = {"a": 1}
    for _level in range(100000):
        value = {"$and": [value]}
    with pytest.raises(IntegrityError):
        check_metadata(meta(validator=dict(value, **{"$where": "1"})), "db.c")
    assert check_metadata(meta(validator=value), "db.c") == {"validator": True}


@pytest.mark.parametrize("name", ["../db/c.bson", "/db/c.bson", "./db/c.bson", "db/sub/c.bson", "db/.bson", "c.bson",
                                  "db/c.json"])
def test_member_names_outside_the_layout(name):
    assert parse_member(name) is None


@pytest.mark.parametrize("namespace", ["admin.system.users", "db.system.js", "db.c$x", "db.c\0x", "a b.c", "nodot",
                                       "d/x.c", ".c", "db.", "x" * 64 + ".c", "db." + "c" * 260])
def test_namespaces_lifeboat_never_restores(namespace):
    with pytest.raises(IntegrityError):
        check_namespace(namespace, "set x")
