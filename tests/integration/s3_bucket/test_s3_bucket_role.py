"""roles/s3_bucket through ansible-playbook against the moto endpoint: every setting read back with boto3,
a second run changes nothing, and the writer policy is least-privilege."""

import json
import uuid

PLAY = """\
- name: Apply the s3_bucket role
  hosts: localhost
  gather_facts: false
  roles:
    - role: lifeboat.backup.s3_bucket
  post_tasks:
    - name: Save the policy fact
      ansible.builtin.copy:
        content: "{{ s3_bucket_iam_policy | to_json }}"
        dest: "{{ fact_file }}"
        mode: "0600"
      changed_when: false
"""


def run_role(ansible, tmp_path, variables):
    play = tmp_path / "site.yml"
    play.write_text(PLAY)
    variables = dict(variables, fact_file=str(tmp_path / "policy-fact.json"))
    return ansible.playbook(str(play), variables)


def recap(output):
    line = [text for text in output.splitlines() if text.startswith("localhost") and "ok=" in text][-1]
    return dict(item.split("=") for item in line.split(":", 1)[1].split())


def rule_of(client, bucket):
    rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert len(rules) == 1, rules
    return rules[0]


def test_defaults_read_back_and_second_run_changes_nothing(ansible, moto, tmp_path):
    bucket = "lb-role-%s" % uuid.uuid4().hex[:10]
    variables = {"s3_bucket_name": bucket, "s3_bucket_endpoint_url": moto.url,
                 "s3_bucket_policy_file": str(tmp_path / "writer-policy.json"),
                 "s3_bucket_policy_prefix": "prod", "s3_bucket_expiration_days": 730}
    proc = run_role(ansible, tmp_path, variables)
    assert proc.returncode == 0, proc.stdout
    assert int(recap(proc.stdout)["changed"]) > 0

    s3 = moto.client()
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rule = rule_of(s3, bucket)
    assert rule["Status"] == "Enabled" and rule["ID"] == "lifeboat-tiers"
    assert sorted((t["Days"], t["StorageClass"]) for t in rule["Transitions"]) == [
        (30, "STANDARD_IA"), (90, "GLACIER"), (365, "DEEP_ARCHIVE")]
    assert rule["Expiration"] == {"Days": 730}
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}

    policy = json.load(open(str(tmp_path / "writer-policy.json")))
    assert policy == json.load(open(str(tmp_path / "policy-fact.json")))
    actions = sorted(a for statement in policy["Statement"] for a in statement["Action"])
    assert "s3:*" not in actions and not any(a.startswith("s3:PutBucket") or a.startswith("s3:DeleteBucket")
                                             for a in actions)
    objects = [s for s in policy["Statement"] if s["Sid"] == "ReadWriteBackups"][0]
    assert objects["Resource"] == ["arn:aws:s3:::%s/prod/*" % bucket]
    listing = [s for s in policy["Statement"] if s["Sid"] == "ListBackups"][0]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["prod", "prod/*"]}}

    proc = run_role(ansible, tmp_path, variables)
    assert proc.returncode == 0, proc.stdout
    assert recap(proc.stdout)["changed"] == "0", proc.stdout


def test_kms_custom_tiers_and_object_lock(ansible, moto, tmp_path):
    bucket = "lb-lock-%s" % uuid.uuid4().hex[:10]
    key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    variables = {"s3_bucket_name": bucket, "s3_bucket_endpoint_url": moto.url,
                 "s3_bucket_encryption": "aws:kms", "s3_bucket_kms_key_id": key,
                 "s3_bucket_transitions": [{"days": 45, "storage_class": "GLACIER_IR"},
                                           {"days": 200, "storage_class": "DEEP_ARCHIVE"}],
                 "s3_bucket_noncurrent_expiration_days": 14, "s3_bucket_abort_multipart_days": 2,
                 "s3_bucket_object_lock": True, "s3_bucket_object_lock_mode": "COMPLIANCE",
                 "s3_bucket_object_lock_days": 10}
    proc = run_role(ansible, tmp_path, variables)
    assert proc.returncode == 0, proc.stdout

    s3 = moto.client()
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    rule = rule_of(s3, bucket)
    assert sorted((t["Days"], t["StorageClass"]) for t in rule["Transitions"]) == [
        (45, "GLACIER_IR"), (200, "DEEP_ARCHIVE")]
    assert "Expiration" not in rule
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 14
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"], retention.get("Years", 0)) == ("COMPLIANCE", 10, 0)
    # the default retention applies to new objects
    s3.put_object(Bucket=bucket, Key="prod/x", Body=b"x")
    head = s3.head_object(Bucket=bucket, Key="prod/x")
    assert head["ObjectLockMode"] == "COMPLIANCE"

    policy = json.load(open(str(tmp_path / "policy-fact.json")))
    kms = [s for s in policy["Statement"] if s["Sid"] == "UseBackupKey"][0]
    assert kms["Resource"] == [key]

    proc = run_role(ansible, tmp_path, variables)
    assert proc.returncode == 0, proc.stdout
    assert recap(proc.stdout)["changed"] == "0", proc.stdout


def test_bad_variables_fail_before_touching_s3(ansible, moto, tmp_path):
    bucket = "lb-bad-%s" % uuid.uuid4().hex[:10]
    proc = run_role(ansible, tmp_path, {"s3_bucket_name": bucket, "s3_bucket_endpoint_url": moto.url,
                                        "s3_bucket_expiration_days": 100})
    assert proc.returncode != 0 and "later than the last transition" in proc.stdout, proc.stdout
    names = [b["Name"] for b in moto.client().list_buckets()["Buckets"]]
    assert bucket not in names
