"""What of a backup set may reach psql: SQL that psql hands to the server as it is, never a meta-command.

psql reads a script through a lexer: outside quotes, comments and COPY rows, a backslash starts a
meta-command (``\\!`` runs a shell command) and ``:name``, ``:'name'``, ``:"name"`` are replaced by psql
variables. ``\\restrict <key>`` (psql 13.22, 14.19, 15.14, 16.10, 17.6 and later) refuses every meta-command
but ``\\unrestrict``, yet psql 15.18 still expands backquotes in the argument of ``\\unrestrict``
(``\\unrestrict `cmd``` runs cmd), so restricted mode alone does not keep a set's bytes from a shell.
Hence two layers, and set text passes only when both hold:

* the text is checked here first: the globals are lexed the way psql lexes them and must consist of the
  statement kinds ``pg_dumpall --globals-only`` writes, with no backslash outside quotes and comments and no
  variable reference; every line of pg_restore's data script that is not a COPY row must have one of the
  exact shapes pg_restore writes there (settings, sequence values, large objects, COPY headers);
* every psql session that reads set text starts with ``\\restrict <key>``, a key drawn here after the set
  was read, and the set's own ``\\restrict``/``\\unrestrict`` lines (pg_dump writes them) are dropped.
"""

import re
import secrets

from ...core.errors import ConfigError, RestoreError

# First release of each major version whose psql knows \restrict (CVE-2025-8714); 18.0 and later all do.
RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}
RESTRICT_LINE = re.compile(rb"\\(?:un)?restrict [A-Za-z0-9]+[ \t]*(?:\r?\n|$)")

# Encodings whose bytes below 0x80 are always ASCII (the server encodings): psql lexes them like ASCII. The
# client-only ones (SJIS, BIG5, GBK, UHC, GB18030, JOHAB) can hide a quote or backslash in a character's
# second byte, so a set may not switch to them.
SAFE_ENCODINGS = frozenset(name.encode() for name in (
    "SQL_ASCII", "UTF8", "EUC_JP", "EUC_CN", "EUC_KR", "EUC_TW", "EUC_JIS_2004", "MULE_INTERNAL", "LATIN1",
    "LATIN2", "LATIN3", "LATIN4", "LATIN5", "LATIN6", "LATIN7", "LATIN8", "LATIN9", "LATIN10", "WIN1250",
    "WIN1251", "WIN1252", "WIN1253", "WIN1254", "WIN1255", "WIN1256", "WIN1257", "WIN1258", "WIN866", "WIN874",
    "KOI8R", "KOI8U", "ISO_8859_5", "ISO_8859_6", "ISO_8859_7", "ISO_8859_8"))


def new_key():
    """A \\restrict key no set can know: drawn after the set's text was read (psql wants letters and digits)."""
    return secrets.token_hex(24)


def restrict_line(key):
    return b"\\restrict " + key.encode("ascii") + b"\n"


def restrict_supported(version_text):
    """'psql (PostgreSQL) 15.18 (Debian ...)' -> True: that psql knows \\restrict."""
    match = re.search(r"(\d+)(?:\.(\d+))?", version_text or "")
    if not match:
        return False
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if major >= 18:
        return True
    return major in RESTRICT_SINCE and minor >= RESTRICT_SINCE[major]


def require_restrict(version_text, purpose):
    if not restrict_supported(version_text):
        raise ConfigError(
            "%s is too old for %s: set text reaches psql there, and lifeboat runs psql only in its restricted mode "
            "(\\restrict, psql 13.22, 14.19, 15.14, 16.10, 17.6 and later), so that no byte of a backup set can "
            "become a psql meta-command. Install a current PostgreSQL client (Debian: apt-get install "
            "postgresql-client) and point pg_bin_dir at it%s" % (
                (version_text or "psql").strip(), purpose,
                ", or set jobs: 1 (pg_restore alone, without psql)" if "parallel" in purpose else ""))


# ---------------------------------------------------------------- the globals (pg_dumpall --globals-only)

NORMAL_TOKEN = re.compile(rb"[A-Za-z0-9_\x80-\xff]+|--|/\*|[\\'\"$:;()&=,]")
COMMENT_MARK = re.compile(rb"/\*|\*/")
ESCAPE_STRING_MARK = re.compile(rb"[\\']")
VARIABLE_NEXT = re.compile(rb"[A-Za-z0-9_\x80-\xff'\"{]")


class Refused(Exception):
    def __init__(self, what, at):
        super(Refused, self).__init__(what)
        self.what = what
        self.at = at


class Statement(object):
    __slots__ = ("tokens", "at")

    def __init__(self, at):
        self.tokens = []  # ('w', WORD upper-cased) | ('s', string) | ('i', quoted identifier) | ('p', b'=')
        self.at = at

    def words(self):
        return [value for kind, value in self.tokens if kind == "w"]


def _quoted_end(data, pos, quote):
    """End (index after the closing quote) of a '...' or "..." token starting at pos; a doubled quote is one."""
    while True:
        close = data.find(quote, pos + 1)
        if close < 0:
            raise Refused("a quote that is never closed", pos)
        if data.startswith(quote, close + 1):
            pos = close + 1
            continue
        return close + 1


def _escape_string_end(data, pos):
    """End of an E'...' string whose quote is at pos: backslash escapes the next byte, '' is a quote."""
    pos += 1
    while True:
        match = ESCAPE_STRING_MARK.search(data, pos)
        if not match:
            raise Refused("a quote that is never closed", pos)
        if match.group() == b"\\":
            pos = match.end() + 1
            continue
        if data.startswith(b"'", match.end()):
            pos = match.end() + 1
            continue
        return match.end()


def split_sql(data):
    """Lex `data` as psql does and return (text to send: data without pg_dump's \\restrict/\\unrestrict lines,
    [Statement]). Raises Refused for anything that psql would not pass to the server as plain SQL or that the
    lexer here could read differently from psql: a backslash outside quotes and comments, a variable
    reference, dollar quoting, U& literals, a NUL byte, a ';' inside parentheses."""
    if b"\x00" in data:
        raise Refused("a NUL byte", data.index(b"\x00"))
    kept = []
    copied = 0
    statements = []
    current = Statement(None)
    depth = 0
    standard_strings = True  # until the text turns them off (then a backslash in a '...' string is refused)
    pos = 0
    while True:
        match = NORMAL_TOKEN.search(data, pos)
        if not match:
            break
        token, at = match.group(), match.start()
        pos = match.end()
        if current.at is None:
            current.at = at
        if token[:1].isalnum() or token[:1] == b"_" or token[0] >= 0x80:
            if data.startswith(b"'", pos):
                if token in (b"E", b"e"):
                    if at > 0 and data[at - 1:at] == b".":
                        raise Refused("an E'...' string right after a dot", at)
                    end = _escape_string_end(data, pos)
                    current.tokens.append(("s", data[pos + 1:end - 1]))
                    pos = end
                    continue
                if token[:1].isdigit() and token[-1:] in b"Ee":
                    raise Refused("a number ending in E right before a quote", at)
            current.tokens.append(("w", token.upper()))
        elif token == b"--":
            newline = data.find(b"\n", pos)
            pos = len(data) if newline < 0 else newline + 1
        elif token == b"/*":
            level = 1
            while level:
                mark = COMMENT_MARK.search(data, pos)
                if not mark:
                    raise Refused("a comment that is never closed", at)
                level += 1 if mark.group() == b"/*" else -1
                pos = mark.end()
        elif token == b"'":
            end = _quoted_end(data, at, b"'")
            content = data[at + 1:end - 1]
            if not standard_strings and b"\\" in content:
                raise Refused("a backslash in a '...' string after standard_conforming_strings was turned off", at)
            current.tokens.append(("s", content.replace(b"''", b"'")))
            pos = end
        elif token == b'"':
            end = _quoted_end(data, at, b'"')
            current.tokens.append(("i", data[at + 1:end - 1].replace(b'""', b'"')))
            pos = end
        elif token == b"\\":
            line_start = at == 0 or data[at - 1:at] == b"\n"
            own = RESTRICT_LINE.match(data, at) if line_start else None
            if not own:
                raise Refused("a psql meta-command (%s)" % _excerpt(data, at), at)
            kept.append(data[copied:at])
            copied = pos = own.end()
        elif token == b"$":
            raise Refused("dollar quoting or a $ parameter", at)
        elif token == b"&":
            raise Refused("a U& literal or an & operator", at)
        elif token == b":":
            if data.startswith(b":", pos):
                pos += 1  # a :: cast
            elif VARIABLE_NEXT.match(data, pos):
                raise Refused("a psql variable reference (%s)" % _excerpt(data, at), at)
        elif token == b"(":
            depth += 1
        elif token == b")":
            if not depth:
                raise Refused("a ')' without its '('", at)
            depth -= 1
        elif token == b";":
            if depth:
                raise Refused("a ';' inside parentheses", at)
            if current.tokens:
                statements.append(current)
                if _sets(current, b"STANDARD_CONFORMING_STRINGS") not in (None, b"ON"):
                    standard_strings = False
            current = Statement(None)
        else:  # '=' and ','
            current.tokens.append(("p", token))
        if not current.tokens:
            current.at = None  # a comment or a dropped line: the statement starts at its first token
    if depth:
        raise Refused("a '(' that is never closed", len(data))
    if current.tokens:
        statements.append(current)  # psql sends a last statement without ';' at the end of its input
    kept.append(data[copied:])
    return b"".join(kept), statements


def _excerpt(data, at):
    line = data[at:at + 40].split(b"\n", 1)[0]
    return line.decode("utf-8", "replace")


def _sets(statement, name):
    """Upper-cased value when `statement` is `SET name = value` / `SET name TO value`, else None."""
    tokens = statement.tokens
    if len(tokens) == 4 and tokens[0] == ("w", b"SET") and tokens[1] == ("w", name) and tokens[2] in (
            ("p", b"="), ("w", b"TO")) and tokens[3][0] in ("w", "s"):
        return tokens[3][1].upper()
    return None


GLOBAL_SETTINGS = {
    b"DEFAULT_TRANSACTION_READ_ONLY": (b"ON", b"OFF"),
    b"STANDARD_CONFORMING_STRINGS": (b"ON", b"OFF"),
    b"CLIENT_ENCODING": SAFE_ENCODINGS,
}
# Statement kinds pg_dumpall --globals-only writes (roles, memberships, role settings, tablespaces, grants on
# tablespaces and parameters, comments and security labels on roles and tablespaces).
GLOBAL_STARTS = ((b"CREATE", b"ROLE"), (b"ALTER", b"ROLE"), (b"COMMENT", b"ON", b"ROLE"),
                 (b"CREATE", b"TABLESPACE"), (b"ALTER", b"TABLESPACE"), (b"COMMENT", b"ON", b"TABLESPACE"))


def _global_allowed(statement):
    words = statement.words()
    if not words:
        return False
    if words[0] == b"SET":
        return any(_sets(statement, name) in values for name, values in GLOBAL_SETTINGS.items())
    if any(tuple(words[:len(start)]) == start for start in GLOBAL_STARTS):
        return True
    if words[0] in (b"GRANT", b"REVOKE"):  # role membership, or privileges on a tablespace or parameter
        return b"ON" not in words or words[words.index(b"ON") + 1:words.index(b"ON") + 2] in (
            [b"TABLESPACE"], [b"PARAMETER"])
    if words[:2] == [b"SECURITY", b"LABEL"] and b"ON" in words:
        return words[words.index(b"ON") + 1:words.index(b"ON") + 2] in ([b"ROLE"], [b"TABLESPACE"])
    return False


def check_globals(data, where):
    """The globals SQL of a set, checked (see the module docstring): returns the text to give psql, without
    pg_dumpall's own \\restrict/\\unrestrict lines. Raises RestoreError naming the line that is refused."""
    try:
        text, statements = split_sql(data)
        for statement in statements:
            if not _global_allowed(statement):
                words = b" ".join(statement.words()[:3]).decode("utf-8", "replace")
                raise Refused("a statement pg_dumpall --globals-only does not write (%s ...)" % words, statement.at)
    except Refused as refused:
        line = data.count(b"\n", 0, refused.at) + 1
        raise RestoreError("the globals of %s hold %s at line %d: refused, nothing was applied. A set's globals may "
                           "hold only what pg_dumpall --globals-only writes (roles, memberships, role settings, "
                           "tablespaces); this set was damaged or crafted: restore another set, or set "
                           "restore_globals: false" % (where, refused.what, line))
    return text


def globals_input(text, key):
    """What psql reads for the globals: restricted mode first, then settings that make psql's lexer and ours
    agree whatever the server or the environment defaults to, then the checked text."""
    return restrict_line(key) + b"SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n" + text


# ---------------------------------------------------------------- pg_restore's data script (parallel load)

IDENT = rb'(?:[a-z_][a-z0-9_]*|"(?:[^"\n]|"")+")'
COPY_HEADER = re.compile(rb"COPY (?:ONLY )?" + IDENT + rb"\." + IDENT + rb"(?: \(" + IDENT + rb"(?:, " + IDENT
                         + rb")*\))? FROM stdin;\n")
NON_ASCII = re.compile(rb"[\x80-\xff]")
QUOTED_IDENT = re.compile(rb'"((?:[^"\n]|"")+)"')
SCRIPT_SET = re.compile(rb"SET ([a-z_]+) = ('[A-Za-z0-9_ ,.:/+-]*'|[A-Za-z0-9_.+-]+);\n")
SCRIPT_SETTINGS = frozenset((b"statement_timeout", b"lock_timeout", b"idle_in_transaction_session_timeout",
                             b"transaction_timeout", b"client_encoding", b"standard_conforming_strings",
                             b"check_function_bodies", b"xmloption", b"client_min_messages", b"row_security",
                             b"default_tablespace", b"default_table_access_method", b"default_with_oids"))
SEARCH_PATH = b"SELECT pg_catalog.set_config('search_path', '', false);\n"
# A plain literal may hold backslashes (pg_restore writes them so when standard_conforming_strings is on), but
# psql reads such a literal differently when the server says that setting is off (code in the set's database
# can say so): it is passed on rewritten (see _converted). An E'' literal reads the same either way.
LITERAL = rb"(?:'(?:[^'\n]|'')*'|E'(?:[^'\\\n]|''|\\\\)*')"
SETVAL = re.compile(rb"SELECT pg_catalog\.setval\((" + LITERAL + rb"), (-?[0-9]+, (?:true|false))\);\n")
STATEMENTS = re.compile(rb"(?:BEGIN;|COMMIT;|SELECT pg_catalog\.lo_open\('[0-9]+', [0-9]+\);"
                        rb"|SELECT pg_catalog\.lowrite\(0, (?:'\\x[0-9a-f]*'|E'\\\\x[0-9a-f]*')\);"
                        rb"|SELECT pg_catalog\.lo_close\(0\);)\n")


class DataScript(object):
    """Sorts the lines of pg_restore's data script that are not COPY rows: each must have a shape pg_restore
    writes there, and leaves here in pure ASCII, so psql's lexer cannot read it differently whatever client
    encoding the server reports (code in the set's own database can change it while rows load)."""

    def __init__(self, where):
        self.where = where
        self.encoding = None
        self.lines = 0

    def classify(self, line):
        """-> (kind, bytes for psql): 'skip' (comments, blank lines, pg_restore's \\restrict lines; nothing is
        sent), 'setting' (for every session), 'statement' (first session only) or 'copy' (a COPY header).
        Raises RestoreError for anything else."""
        self.lines += 1
        if not line.endswith(b"\n"):
            line += b"\n"
        if line.startswith(b"--") or not line.strip() or RESTRICT_LINE.fullmatch(line):
            return "skip", None
        if not NON_ASCII.search(line):
            setting = SCRIPT_SET.fullmatch(line)
            if setting and setting.group(1) in SCRIPT_SETTINGS:
                if setting.group(1) == b"client_encoding":
                    value = setting.group(2).strip(b"'").upper()
                    if value not in SAFE_ENCODINGS:
                        self.refuse(line, "it switches psql to the client-only encoding %s" % value.decode())
                    self.encoding = value
                return "setting", line
            if line == SEARCH_PATH:
                return "setting", line
            if STATEMENTS.fullmatch(line):
                return "statement", line
            if COPY_HEADER.fullmatch(line):
                return "copy", line
        setval = SETVAL.fullmatch(line)
        if setval:
            literal = setval.group(1)
            if NON_ASCII.search(literal) or literal.startswith(b"'") and b"\\" in literal:
                literal = self._converted(_literal_value(literal))
            return "statement", b"SELECT pg_catalog.setval(%s, %s);\n" % (literal, setval.group(2))
        if COPY_HEADER.fullmatch(line):
            return "copy", QUOTED_IDENT.sub(self._unicode_ident, line)
        self.refuse(line)

    def _converted(self, value):
        """A text literal in ASCII: the bytes in hex, converted from the script's encoding by the server."""
        if self.encoding is None:
            self.refuse(value, "it has non-ASCII text before the script declared its encoding")
        return b"pg_catalog.convert_from(pg_catalog.decode('%s', 'hex'), '%s')" % (
            value.hex().encode(), self.encoding)

    def _unicode_ident(self, match):
        """"ünï" -> U&"\\00fcn\\00ef" (an identifier spelt in ASCII; only a UTF8 script can say what it is)."""
        if self.encoding != b"UTF8":
            self.refuse(match.group(), "a non-ASCII name in a script that is not UTF8")
        try:
            name = match.group(1).replace(b'""', b'"').decode("utf-8")
        except UnicodeDecodeError:
            self.refuse(match.group(), "a name that is not valid UTF-8")
        spelt = "".join(char if " " <= char < "\x7f" and char not in '\\"' else
                        ('""' if char == '"' else "\\%04x" % ord(char) if ord(char) < 0x10000 else
                         "\\+%06x" % ord(char)) for char in name)
        return b'U&"' + spelt.encode("ascii") + b'"'

    def refuse(self, line, why=None):
        raise RestoreError(
            "line %d of pg_restore's data script of %s is not one the parallel load passes to psql (%r%s): the "
            "set's archive was damaged or crafted; refused, and the new database is dropped again. jobs: 1 "
            "restores with pg_restore alone, without psql" % (
                self.lines, self.where, line[:80], "; %s" % why if why else ""))


def _literal_value(literal):
    if literal.startswith(b"E'"):
        return literal[2:-1].replace(b"''", b"'").replace(b"\\\\", b"\\")
    return literal[1:-1].replace(b"''", b"'")
