"""Options every backup module shares (doc fragment lifeboat.backup.backup) and every restore module shares
(doc fragment lifeboat.backup.restore), each defined once. module_options builds the argument_specs from them;
the runner checks job files against BACKUP."""

from ..core.codecs import ALGORITHMS
from ..core.options import Option

BACKUP = (
    Option("compression", default="zstd", choices=ALGORITHMS),
    Option("compression_level", "int"),
    Option("compression_threads", "int", default=0),
    Option("encryption", "dict", suboptions=(Option("age_recipients", "list", elements="str", default=[]),)),
    Option("verify", "bool", default=True),
    Option("tags", "dict", default={}),
)

RESTORE = (
    Option("backup", default="latest"),
    Option("before"),
    Option("skip_damaged", "bool", default=False),
    Option("encryption", "dict", suboptions=(Option("age_identity_file", "path"),)),
)
