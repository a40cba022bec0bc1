"""A moto server (S3, EC2, IAM...) on 127.0.0.1: a real HTTP endpoint reached through endpoint_url."""

import os
import subprocess
import sys
import uuid

from .ports import free_port, wait_for_port

CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}
REGION = "us-east-1"


class MotoServer(object):
    def __init__(self, log_path):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ, **aws_env()))
        wait_for_port(self.port, process=self.process)

    def client(self, service="s3"):
        import boto3
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_bucket(self, prefix="lb"):
        name = "%s-%s" % (prefix, uuid.uuid4().hex[:12])
        self.client().create_bucket(Bucket=name)
        return name

    def s3_options(self, bucket, prefix=""):
        return dict(bucket=bucket, prefix=prefix, endpoint_url=self.url, region=REGION, **CREDENTIALS)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def aws_env():
    """Environment that keeps boto3 away from real AWS credentials and metadata services."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true"}
