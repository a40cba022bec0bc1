"""Notifications after a runner operation: webhook POST (Slack-compatible), mail through a command,
healthcheck ping. A notification that fails is reported back, never raised: it must not mask the result."""

import json
import socket
import subprocess
from email.message import EmailMessage

from urllib.request import Request, build_opener

from ..core.options import Option, names

DEFAULT_MAIL_COMMAND = ["/usr/sbin/sendmail", "-t"]
DEFAULT_ON = ["failure"]
EVENTS = ("failure", "success")
DEFAULT_TIMEOUT = 10
# A job file's `notify` object (jobs.validate checks it against this; the URLs count as secrets: jobs.SECRET_KEYS).
# mail_to is an address or a list of them.
NOTIFY = (
    Option("webhook_url", no_log=True),
    Option("mail_to", "raw"),
    Option("mail_from"),
    Option("mail_command", "list", elements="str", default=DEFAULT_MAIL_COMMAND),
    Option("healthcheck_url", no_log=True),
    Option("on", "list", elements="str", default=DEFAULT_ON),
    Option("timeout", "float", default=DEFAULT_TIMEOUT),
)
NOTIFY_KEYS = names(NOTIFY)


def summary(event):
    """One line for humans: what happened, to which job, where, and the error."""
    status = "FAILED" if event.get("status") == "failed" else "ok"
    text = "lifeboat %s of job %s on %s %s" % (event.get("operation"), event.get("job"),
                                               event.get("host") or socket.gethostname(), status)
    if event.get("set"):
        text += " (set %s)" % event["set"]
    if event.get("error"):
        text += ": %s" % event["error"]
    return text


def _post(url, body, timeout):
    request = Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                      headers={"Content-Type": "application/json", "User-Agent": "lifeboat"})
    with build_opener().open(request, timeout=timeout) as response:  # nosec: URL from the root-owned job file
        response.read()
        return response.status


def _get(url, timeout):
    request = Request(url, method="GET", headers={"User-Agent": "lifeboat"})
    with build_opener().open(request, timeout=timeout) as response:  # nosec: URL from the root-owned job file
        response.read()
        return response.status


def _mail(config, event, text, timeout):
    recipients = config.get("mail_to") or []
    if isinstance(recipients, str):
        recipients = [recipients]
    message = EmailMessage()
    message["To"] = ", ".join(recipients)
    message["From"] = config.get("mail_from") or "lifeboat@%s" % socket.getfqdn()
    message["Subject"] = "[lifeboat] %s %s: %s on %s" % (
        event.get("operation"), "FAILED" if event.get("status") == "failed" else "ok", event.get("job"),
        event.get("host") or socket.gethostname())
    message.set_content(text + "\n\n" + json.dumps(event, indent=2, sort_keys=True, default=str) + "\n")
    argv = list(config.get("mail_command") or DEFAULT_MAIL_COMMAND)
    proc = subprocess.run(argv, input=message.as_bytes(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=max(timeout, 30), check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()[:300]
        raise RuntimeError("%s exited with status %d: %s" % (argv[0], proc.returncode, detail))


def _safe_url(url):
    """Scheme and host only: webhook and healthcheck URLs carry their secret in the path."""
    head, sep, rest = (url or "").partition("://")
    return "%s%s%s/..." % (head, sep, rest.split("/")[0].rpartition("@")[2]) if sep else "<url>"


def send(config, event, log=None):
    """Send what `config` (the job's notify object) asks for this event. Returns a list of
    {"channel", "ok", "error"}; failures are logged through `log(msg)` and never raised."""
    config = config or {}
    on = config.get("on") or DEFAULT_ON
    timeout = config.get("timeout") or DEFAULT_TIMEOUT
    outcome = "failure" if event.get("status") == "failed" else "success"
    results = []
    text = summary(event)

    def attempt(channel, func):
        try:
            func()
            results.append({"channel": channel, "ok": True, "error": None})
        except Exception as exc:  # pylint: disable=broad-except
            message = "%s notification failed: %s" % (channel, exc)
            results.append({"channel": channel, "ok": False, "error": message})
            if log:
                log(message)

    if outcome in on:
        if config.get("webhook_url"):
            body = dict(event, text=text)
            attempt("webhook %s" % _safe_url(config["webhook_url"]),
                    lambda: _post(config["webhook_url"], body, timeout))
        if config.get("mail_to"):
            attempt("mail", lambda: _mail(config, event, text, timeout))
    if outcome == "success" and event.get("operation") == "run" and config.get("healthcheck_url"):
        attempt("healthcheck %s" % _safe_url(config["healthcheck_url"]),
                lambda: _get(config["healthcheck_url"], timeout))
    return results
