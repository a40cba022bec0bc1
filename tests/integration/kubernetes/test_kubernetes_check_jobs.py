"""The kubernetes_schedule role refuses, at play time, a job file the runner would refuse in the CronJobs' pods
(tasks/check_jobs.yml: `lifeboat check-jobs` on the controller): the play fails with the runner's message (job, key,
closest name) before anything is rendered or applied, in check mode too. Rendered without a cluster
(kubernetes_schedule_apply: false), as test_kubernetes_render.py does; the `runner` fixture is in conftest.py."""

import copy
import os

import pytest

from support.kubernetes_render import SETTINGS, render_schedule


def settings_with(**job_changes):
    """SETTINGS with the job file of its first job (app-db, sqlite) changed."""
    settings = copy.deepcopy(SETTINGS)
    settings["kubernetes_schedule_jobs"][0]["job"].update(job_changes)
    return settings


def render(runner, tmp_path, settings, **kwargs):
    out = tmp_path / "render"
    return render_schedule(runner, str(out), settings=settings, **kwargs), out


@pytest.mark.parametrize("check", [False, True], ids=["render", "check-mode"])
def test_a_misspelt_option_fails_the_play_before_anything_is_rendered(runner, tmp_path, check):
    proc, out = render(runner, tmp_path, settings_with(busy_timout=30), check=check)
    assert proc.returncode != 0
    assert ("the runner refuses the job files of kubernetes_schedule_jobs, so nothing was rendered or applied: "
            "job app-db (kind sqlite): unknown option busy_timout (did you mean busy_timeout?)") in proc.stdout, \
        proc.stdout[-3000:]
    assert "job chroma" not in proc.stdout  # the valid job is not named
    assert "Traceback" not in proc.stdout
    assert not os.path.exists(str(out))


@pytest.mark.parametrize("changes, message", [
    ({"retention": {"keep_last": "x"}}, "job app-db: retention keep_last must be a whole number, not 'x'"),
    ({"s3": {"bucket": "acme-backups", "regoin": "eu-west-1"}},
     "job app-db: unknown s3 option regoin (did you mean region?)"),
    ({"verify": {"mode": "fast"}}, "job app-db: verify.mode must be one of full, list, decode, not 'fast'"),
])
def test_each_check_of_the_job_file_applies(runner, tmp_path, changes, message):
    proc, out = render(runner, tmp_path, settings_with(**changes))
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-3000:]
    assert not os.path.exists(str(out))


def test_absent_deletes_without_checking_the_job_files(runner, tmp_path):
    """state absent only names the objects: a job file that went stale does not stop their deletion."""
    settings = dict(settings_with(busy_timout=30), kubernetes_schedule_image="")
    proc, out = render(runner, tmp_path, settings, kubernetes_schedule_state="absent")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sorted(os.listdir(str(out))) == ["delete.yml"]
    assert "Build the runner that checks the job files" not in proc.stdout
