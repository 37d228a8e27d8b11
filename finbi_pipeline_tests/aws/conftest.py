"""AWS fixtures (moto, fake credentials) shared by the aws/ and resources/ test folders."""

from finbi_pipeline_tests.aws.fixtures import aws_env, lake, moto_aws  # noqa: F401
