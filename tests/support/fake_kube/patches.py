"""The PATCH bodies the fake Kubernetes API applies: JSON merge patch (RFC 7386) and strategic merge patch as far as
pod templates need it (application/apply-patch+yaml is applied as a strategic merge patch too)."""

import copy


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target, patch):
    """Strategic merge patch as far as pod templates need it: like merge_patch, but lists of objects that all
    carry a `name` are merged by name ($patch directives are dropped)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif (isinstance(value, list) and isinstance(result.get(key), list) and value
              and all(isinstance(item, dict) and "name" in item for item in value + result[key])):
            merged = [copy.deepcopy(item) for item in result[key]]
            for item in value:
                index = next((i for i, old in enumerate(merged) if old["name"] == item["name"]), None)
                if index is None:
                    merged.append(strategic_merge_patch({}, item))
                else:
                    merged[index] = strategic_merge_patch(merged[index], item)
            result[key] = merged
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result
