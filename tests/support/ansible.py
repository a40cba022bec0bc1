"""Run the collection through ansible-playbook, as an operator would, and read back task results."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collections_root(base):
    """A collections path holding this checkout as lifeboat.backup (a symlink, so edits apply at once)."""
    root = os.path.join(base, "collections")
    link = os.path.join(root, "ansible_collections", "lifeboat", "backup")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    return root


class AnsibleRunner(object):
    def __init__(self, workdir, collections, extra_env=None):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.inventory = os.path.join(workdir, "inventory.ini")
        with open(self.inventory, "w") as handle:
            handle.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
        self.env = dict(os.environ)
        self.env.update({
            "ANSIBLE_COLLECTIONS_PATH": collections,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCAL_TEMP": os.path.join(workdir, ".ansible-local"),
            "ANSIBLE_REMOTE_TEMP": os.path.join(workdir, ".ansible-remote"),
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        })
        self.env.update(extra_env or {})
        self._count = 0

    def playbook(self, path, extra_vars=None, check=False, extra_args=(), env=None, timeout=900):
        """Run a playbook file; returns CompletedProcess (stdout+stderr in .stdout)."""
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", self.inventory, path]
        if extra_vars:
            self._count += 1
            vars_file = os.path.join(self.workdir, "vars-%d.json" % self._count)
            with open(vars_file, "w") as handle:
                json.dump(extra_vars, handle)
            argv += ["-e", "@" + vars_file]
        if check:
            argv.append("--check")
        argv += list(extra_args)
        return subprocess.run(argv, cwd=self.workdir, env=dict(self.env, **(env or {})), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)

    def module(self, name, args, check=False, env=None):
        """Run one module task through ansible-playbook; returns its registered result (failed or not)."""
        self._count += 1
        result_file = os.path.join(self.workdir, "result-%d.json" % self._count)
        play = os.path.join(self.workdir, "task-%d.yml" % self._count)
        with open(play, "w") as handle:
            handle.write(PLAY_TEMPLATE % {"module": name, "result": result_file})
        proc = self.playbook(play, extra_vars={"module_args": args}, check=check, env=env)
        if not os.path.exists(result_file):
            raise AssertionError("ansible-playbook did not run the task:\n" + proc.stdout)
        with open(result_file) as handle:
            result = json.load(handle)
        result["_output"] = proc.stdout
        return result


PLAY_TEMPLATE = """\
- name: Run one lifeboat module
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Module under test
      %(module)s: "{{ module_args }}"
      register: out
      ignore_errors: true
    - name: Save the result
      ansible.builtin.copy:
        content: "{{ out | to_json }}"
        dest: "%(result)s"
        mode: "0600"
      check_mode: false
"""
