"""infra/finbi.yaml: valid CloudFormation (cfn-lint, offline) with the pieces docs/aws.md
relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "finbi.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Reads !Ref, !Sub, !GetAtt as plain values: enough to inspect the template."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _cfn_lint() -> str:
    beside_python = Path(sys.executable).with_name("cfn-lint")
    found = str(beside_python) if beside_python.exists() else shutil.which("cfn-lint")
    if not found:
        pytest.fail("cfn-lint is not installed in this environment")
    return found


def test_template_passes_cfn_lint():
    result = subprocess.run(
        [_cfn_lint(), str(TEMPLATE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_declares_the_stack_the_docs_describe():
    template = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - safe subclass
    types = {name: r["Type"] for name, r in template["Resources"].items()}
    assert types["LakeBucket"] == "AWS::S3::Bucket"
    assert types["GlueDatabase"] == "AWS::Glue::Database"
    assert types["AthenaWorkGroup"] == "AWS::Athena::WorkGroup"
    assert types["PipelinePolicy"] == "AWS::IAM::ManagedPolicy"
    assert types["QuickSightDataSource"] == "AWS::QuickSight::DataSource"
    assert types["UploadQueue"] == "AWS::SQS::Queue"
    [notification] = template["Resources"]["LakeBucket"]["Properties"]["NotificationConfiguration"][
        "QueueConfigurations"
    ]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "raw/"}]
    workgroup = template["Resources"]["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert "BytesScannedCutoffPerQuery" in workgroup
    statements = template["Resources"]["PipelinePolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    actions = [
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not [a for a in actions if a.endswith(":*") or a == "*"]  # least privilege: no wildcards
