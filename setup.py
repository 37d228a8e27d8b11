"""Packaging for FinBI: exact pins that are known to install and work together."""

from setuptools import find_packages, setup

setup(
    name="finbi_pipeline",
    version="0.1.0",
    description=(
        "Retail finance and BI pipeline on Dagster: S3/Glue/Athena/QuickSight "
        "or an embedded DuckDB stack."
    ),
    packages=find_packages(exclude=["finbi_pipeline_tests*"]),
    package_data={"finbi_pipeline": ["sql/*.sql", "sources.yaml", "dashboard/*.py"]},
    python_requires=">=3.11,<3.13",
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-aws==0.29.27",
        "boto3==1.44.8",
        "botocore==1.44.8",
        "duckdb==1.5.6",
        "sqlglot==30.30.0",
        "pandas==2.3.3",
        "pyarrow==26.0.1",
        "numpy==2.4.6",
        "PyYAML==6.0.4",
        "tzdata==2026.6",  # time zone names in sources files, checked whatever the OS has
        "tabulate==0.10.0",  # Markdown previews in asset metadata
        "click==8.5.1",
        "streamlit==1.67.0",
        "plotly==7.1.0",
        "psutil==7.2.2",
    ],
    extras_require={
        "dev": [
            "pytest==9.2.0",
            "ruff==0.17.6",
            "moto[s3,glue,athena,quicksight]==5.2.5",
            "cfn-lint==1.58.0",
            "playwright==1.65.2",
        ],
    },
    entry_points={"console_scripts": ["finbi=finbi_pipeline.cli:main"]},
)
