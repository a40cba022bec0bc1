"""What a repository listing says about one set, before its manifest is read."""


class StoredSet(object):
    """One set as found in one repository: complete when its manifest.json is present."""

    __slots__ = ("set_id", "complete", "data_name", "size", "modified", "location")

    def __init__(self, set_id, complete, data_name, size, modified, location):
        self.set_id = set_id
        self.complete = complete
        self.data_name = data_name
        self.size = size
        self.modified = modified  # aware datetime of the newest object, for the leftover grace period
        self.location = location

    def __repr__(self):
        return "StoredSet(%s, complete=%s)" % (self.set_id, self.complete)
