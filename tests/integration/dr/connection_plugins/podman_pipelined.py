"""containers.podman.podman with Ansible pipelining (test harness only): the module goes to the container's python
on the stdin of one `podman exec -i` instead of a temporary file, a chmod and an exec, which halves the time of each
task of the DR rebuild test. A real instance is reached over SSH, where pipelining is an ordinary setting."""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase
from ansible_collections.containers.podman.plugins.connection import podman

DOCUMENTATION = podman.DOCUMENTATION.replace("name: podman", "name: podman_pipelined", 1)


class Connection(podman.Connection):
    transport = "podman_pipelined"
    has_pipelining = True

    def exec_command(self, cmd, in_data=None, sudoable=False):
        if not self._connected:
            self._connect()
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        # podman exec passes stdin on only with -i
        args = ["exec"] + (["-i"] if in_data else []) + (["--user", self.user] if self.user else [])
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
