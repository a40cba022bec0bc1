"""Label selectors as LIST requests send them (labelSelector=a=b,c!=d,e in (f,g),!h): parsed, and matched against
an object's labels."""


def parse_selector(text):
    """A label selector as a list of (key, operator, values)."""
    terms, depth, current = [], 0, ""
    for char in text or "":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    parsed = []
    for term in (t.strip() for t in terms if t.strip()):
        words = term.split()
        if len(words) >= 3 and words[1] in ("in", "notin"):
            values = " ".join(words[2:]).strip("()").split(",")
            parsed.append((words[0], words[1], [v.strip() for v in values]))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            parsed.append((key.strip(), "!=", [value.strip()]))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            parsed.append((key.strip(), "=", [value.strip()]))
        elif term.startswith("!"):
            parsed.append((term[1:], "!", []))
        else:
            parsed.append((term, "exists", []))
    return parsed


def selector_matches(selector, labels):
    for key, operator, values in selector:
        present = key in labels
        if operator in ("=", "in") and (not present or labels[key] not in values):
            return False
        if operator in ("!=", "notin") and present and labels[key] in values:
            return False
        if (operator == "exists" and not present) or (operator == "!" and present):
            return False
    return True
