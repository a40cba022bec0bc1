"""The schedule role refuses, at play time, a job file the runner would refuse at run time (tasks/check_jobs.yml:
`lifeboat check-jobs` on the controller): the play fails with the runner's message (job, key, closest name) before
any task changes the host, in check mode too, and quotes no credential. The role runs against localhost with every
path it would write under a temporary directory, which must stay absent; a valid play is run in check mode only."""

import glob
import os

import pytest

PLAY = """\
- name: Apply the schedule role
  hosts: localhost
  gather_facts: false
  roles:
    - role: lifeboat.backup.schedule
"""


@pytest.fixture
def schedule(ansible, tmp_path):
    """schedule(jobs, check=False, **variables) -> (the finished ansible-playbook, the host's root directory)."""
    play = tmp_path / "schedule.yml"
    play.write_text(PLAY)
    host = tmp_path / "host"
    controller_tmp = tmp_path / "controller-tmp"
    controller_tmp.mkdir()

    def run(jobs, check=False, **variables):
        settings = {
            "schedule_jobs": jobs, "schedule_install_packages": False, "schedule_logrotate": False,
            "schedule_config_dir": str(host / "etc"), "schedule_state_dir": str(host / "state"),
            "schedule_log_dir": str(host / "log"), "schedule_lib_dir": str(host / "lib"),
            "schedule_bin_path": str(host / "bin" / "lifeboat"), "schedule_metrics_dir": str(host / "metrics"),
            "schedule_systemd_dir": str(host / "systemd"), "schedule_cron_file": "lifeboat-test-%d" % os.getpid(),
        }
        settings.update(variables)
        proc = ansible.playbook(str(play), extra_vars=settings, check=check, env={"TMPDIR": str(controller_tmp)})
        # the runner built for the check is gone from the controller, whatever the outcome
        assert glob.glob(str(controller_tmp / "*.lifeboat-check")) == [], proc.stdout[-3000:]
        return proc, host
    return run


def job(name="app-db", kind="postgres", **options):
    base = {"database": "app"} if kind == "postgres" else {"path": "/srv/app/app.db"}
    return {"name": name, "kind": kind, "options": dict(base, dest="/var/backups/lifeboat", **options)}


@pytest.mark.parametrize("check", [False, True], ids=["apply", "check-mode"])
def test_a_misspelt_option_fails_the_play_before_anything_is_written(schedule, check):
    proc, host = schedule([job("app-files", "sqlite"), job(pg_host="db1")], check=check)
    assert proc.returncode != 0
    assert ("the runner refuses schedule_jobs of localhost, so nothing was changed on it: job app-db (kind postgres): "
            "unknown option pg_host (did you mean login_host?)") in proc.stdout, proc.stdout[-3000:]
    assert "app-files" not in proc.stdout.split("the runner refuses", 1)[1].split("\n")[0]  # the valid job is fine
    assert "Traceback" not in proc.stdout
    assert not host.exists()
    assert "TASK [lifeboat.backup.schedule : Create the runner directories]" not in proc.stdout


def test_the_role_defaults_are_checked_with_each_job(schedule):
    """schedule_default_retention and schedule_default_options end up in every job file: checked there too."""
    proc, host = schedule([job("app-files", "sqlite")], schedule_default_retention={"keep_last": "x"},
                          schedule_default_options={"s3": {"bucket": "b", "regoin": "eu-west-1"}})
    assert proc.returncode != 0
    assert "job app-files: unknown s3 option regoin (did you mean region?)" in proc.stdout, proc.stdout[-3000:]
    assert not host.exists()
    proc, host = schedule([job("app-files", "sqlite"), job()], schedule_default_retention={"keep_last": "x"})
    assert proc.returncode != 0
    for name in ("app-files", "app-db"):
        assert "job %s: retention keep_last must be a whole number, not 'x'" % name in proc.stdout, proc.stdout[-3000:]
    assert not host.exists()


def test_a_refused_job_file_quotes_no_credential(schedule):
    proc, host = schedule([job(login_password=987654321, s3={"bucket": "b", "secret_key": "hunter2-secret"})])
    assert proc.returncode != 0
    assert "login_password must be a string, not <secret>" in proc.stdout, proc.stdout[-3000:]
    assert "987654321" not in proc.stdout and "hunter2" not in proc.stdout
    assert not host.exists()


def test_valid_jobs_pass_the_check_and_the_play_goes_on(schedule):
    proc, host = schedule([job("app-files", "sqlite", retention={"keep_last": 3}),
                           job(login_host="db1", s3={"bucket": "b", "region": "eu-west-1"})], check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "TASK [lifeboat.backup.schedule : Refuse the job files the runner refuses]" in proc.stdout
    assert "TASK [lifeboat.backup.schedule : Write the job files]" in proc.stdout
    assert not host.exists()  # check mode


def test_absent_jobs_are_not_checked(schedule):
    """A job being removed (state absent) has no job file to check: its options may be stale."""
    stale = dict(job(pg_host="db1"), state="absent")
    proc, host = schedule([stale], check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Build the runner that checks the job files" not in proc.stdout
    assert not host.exists()
