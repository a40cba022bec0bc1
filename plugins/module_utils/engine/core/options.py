"""Option schemas: each option of the collection described once, beside the concept that owns it.

A schema is a tuple of Option. From it come the modules' Ansible argument_spec (argument_spec), the option
names the engine accepts (names) and the runner's checks of job files (normalise). The doc fragments are YAML
for ansible-doc; tests/unit/plugins/doc_fragments/test_doc_fragments_match_schemas.py proves they agree.
Plain Python, no Ansible import.
"""

import copy

from .errors import ConfigError

# What a job file (JSON) may hold for each option type, and how an error message names it.
_JSON_TYPES = {
    "str": ((str,), "a string"),
    "path": ((str,), "a path"),
    "int": ((int,), "a whole number"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "list": ((list,), "a list"),
    "dict": ((dict,), "an object"),
}


class Option(object):
    """One option: its name and what Ansible's argument_spec says of it (type, default, required, choices,
    aliases, no_log, elements, suboptions). no_log is None when unset: only an explicit True or False reaches the
    argument_spec (False tells Ansible a name such as password_file holds no secret)."""

    __slots__ = ("name", "type", "default", "required", "choices", "aliases", "no_log", "elements", "suboptions")

    def __init__(self, name, type="str", default=None, required=False, choices=None, aliases=(), no_log=None,
                 elements=None, suboptions=None):  # pylint: disable=redefined-builtin
        self.name = name
        self.type = type
        self.default = default
        self.required = required
        self.choices = tuple(choices) if choices is not None else None
        self.aliases = tuple(aliases)
        self.no_log = no_log
        self.elements = elements
        self.suboptions = tuple(suboptions) if suboptions is not None else None

    def spec(self):
        """This option's argument_spec entry (a fresh dict: defaults such as [] are never shared)."""
        entry = {"type": self.type}
        if self.required:
            entry["required"] = True
        if self.default is not None:
            entry["default"] = copy.deepcopy(self.default)
        if self.choices is not None:
            entry["choices"] = list(self.choices)
        if self.aliases:
            entry["aliases"] = list(self.aliases)
        if self.no_log is not None:
            entry["no_log"] = self.no_log
        if self.elements:
            entry["elements"] = self.elements
        if self.suboptions is not None:
            entry["options"] = argument_spec(self.suboptions)
        return entry

    def __repr__(self):
        return "Option(%r, %r)" % (self.name, self.type)


def argument_spec(schema):
    """The Ansible argument_spec dict of a schema, in schema order."""
    return {option.name: option.spec() for option in schema}


def names(schema):
    """The option names of a schema, in schema order (aliases not included)."""
    return tuple(option.name for option in schema)


def find(schema, name):
    """The Option called `name` in `schema`."""
    for option in schema:
        if option.name == name:
            return option
    raise KeyError(name)


def aliases(schema):
    """{alias: option name} of a schema."""
    return {alias: option.name for option in schema for alias in option.aliases}


def secret_names(schema):
    """Names and aliases of the options marked no_log=True, suboptions included (a frozenset)."""
    found = set()
    for option in schema:
        if option.no_log:
            found.update((option.name,) + option.aliases)
        if option.suboptions:
            found.update(secret_names(option.suboptions))
    return frozenset(found)


def _is(type_name, value):
    types = _JSON_TYPES[type_name][0]
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def check_type(option, value, where):
    """Raise ConfigError unless a job file's `value` has the JSON type of `option`. None (unset) is allowed,
    except for an option with a default and fixed choices, where it is no choice at all."""
    if value is None and option.choices is not None and option.default is not None:
        raise ConfigError("%s: %s must be one of %s, not None" % (where, option.name, ", ".join(option.choices)))
    if value is None or option.type == "raw":
        return value
    if not _is(option.type, value):
        raise ConfigError("%s: %s must be %s, not %r" % (where, option.name, _JSON_TYPES[option.type][1], value))
    if option.choices is not None and value not in option.choices:
        raise ConfigError("%s: %s must be one of %s, not %r" % (where, option.name, ", ".join(option.choices), value))
    if option.type == "list" and option.elements and not all(_is(option.elements, item) for item in value):
        raise ConfigError("%s: %s must be a list of %ss, not %r" % (where, option.name, option.elements, value))
    return value


def normalise(schema, document, where, unknown="reject", types=True, defaults=False, drop_unset=False):
    """A copy of a job file's `document` checked against `schema`: aliases resolved to the option name (the
    option name wins when both are given), and with `types` each value checked for its JSON type and choices.

    unknown: "reject" raises ConfigError naming the unknown keys and the known ones; "keep" leaves them as they
    are (a schema that covers only part of a document). defaults: fill missing options with their default.
    drop_unset: leave out every key whose value is None or ""."""
    if not isinstance(document, dict):
        raise ConfigError("%s must be an object of options (known: %s)" % (where, ", ".join(names(schema))))
    result = dict(document)
    for alias, name in aliases(schema).items():
        if alias in result:
            value = result.pop(alias)
            result.setdefault(name, value)
    if unknown == "reject":
        extra = sorted(set(result) - set(names(schema)))
        if extra:
            raise ConfigError("%s: unknown option(s) %s (known: %s)"
                              % (where, ", ".join(extra), ", ".join(names(schema))))
    for option in schema:
        if types and option.name in result:
            check_type(option, result[option.name], where)
        if defaults and result.get(option.name) is None and option.default is not None:
            result[option.name] = copy.deepcopy(option.default)
    if drop_unset:
        result = {key: value for key, value in result.items() if value not in (None, "")}
    return result
