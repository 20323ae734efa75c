"""Static vocabulary of the simulated organisation: places, agents, actions, models.

Everything here is data, not behaviour; :mod:`detector.synth.population` draws
entities from it. Values follow real CloudTrail / ECS spellings so that parsers
and features see what production traffic would give them.
"""

from __future__ import annotations

from dataclasses import dataclass

ACCOUNT_ID = "418295730164"

# (country, UTC offset in hours, AWS region, public first octets for home networks)
SITES: tuple[tuple[str, float, str, tuple[int, ...]], ...] = (
    ("US", -5.0, "us-east-1", (73, 98, 24)),
    ("US", -8.0, "us-west-2", (67, 76, 71)),
    ("GB", 0.0, "eu-west-2", (81, 86, 90)),
    ("DE", 1.0, "eu-central-1", (84, 91, 93)),
    ("IN", 5.5, "ap-south-1", (49, 117, 103)),
    ("JP", 9.0, "ap-northeast-1", (126, 153, 180)),
)
SITE_WEIGHTS = (0.3, 0.2, 0.15, 0.15, 0.12, 0.08)

FIRST_NAMES = (
    "alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken",
    "lena", "mallory", "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "uma",
    "victor", "wendy", "xavier", "yara", "zoe", "arjun", "bea", "chen", "dmitri", "elif", "farah",
    "goran", "hana", "ines", "jonas", "kaito", "leila", "mateo", "noor", "priya"
)  # fmt: skip
LAST_NAMES = (
    "nguyen", "smith", "mueller", "tanaka", "patel", "garcia", "okafor", "rossi", "kowalski",
    "dubois", "novak", "silva", "jensen", "kim", "ivanova", "haddad", "lopez", "fischer", "sato",
    "khan", "moreau", "weber", "brown", "singh", "cohen"
)  # fmt: skip
SERVICE_NAMES = (
    "etl-orders", "etl-payments", "report-builder", "feature-sync", "backup-nightly",
    "log-shipper", "billing-export", "search-indexer", "ml-training", "invoice-renderer",
    "crm-sync", "fraud-batch", "dwh-loader", "image-resizer", "audit-archiver", "churn-scoring",
    "email-digest", "sitemap-gen", "catalog-import", "gdpr-eraser"
)  # fmt: skip
API_OWNERS = (
    "svc-checkout", "svc-mobile-app", "svc-support-bot", "svc-risk", "svc-partner-portal",
    "svc-recommendations", "svc-onboarding", "svc-claims"
)  # fmt: skip

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
)
CLI_AGENTS = (
    "aws-cli/2.15.30 Python/3.11.8 Darwin/23.4.0 exe/x86_64 prompt/off command/s3.cp",
    "aws-cli/2.17.5 Python/3.11.9 Windows/10 exe/AMD64 prompt/off command/sts.get-caller-identity",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.8 "
    "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
)
CONSOLE_AGENT = "AWS Internal"
SDK_AGENTS = (
    "aws-sdk-java/2.25.11 Linux/5.10.213-201.855.amzn2.x86_64 "
    "OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. "
    "exec-env/AWS_ECS_EC2",
    "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/s3#1.53.0",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.213 md/arch#x86_64 "
    "lang/python#3.11.8 exec-env/AWS_Lambda_python3.11 Botocore/1.34.69",
)
DB_AGENTS = ("DBeaver 24.0.1 - Main", "psql 16.2", "DataGrip 2024.1")
DRIVER_AGENTS = ("PostgreSQL JDBC Driver 42.7.3", "psycopg/3.1.18", "pgx/v5.5.5")
HTTP_CLIENTS = ("python-requests/2.32.3", "Go-http-client/2.0", "okhttp/4.12.0", "axios/1.6.8")

BEDROCK_MODELS = (
    "anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "amazon.titan-text-express-v1",
)

PII_TABLES = ("crm/customers_pii", "crm/payment_cards", "hr/employees_pii")
PLAIN_TABLES = (
    "dwh/orders",
    "dwh/sessions",
    "dwh/products",
    "dwh/marketing_spend",
    "crm/tickets",
    "ops/deployments",
)
PII_BUCKETS = ("acme-customer-exports", "acme-hr-records")
DATA_BUCKETS = ("acme-analytics-lake", "acme-reports", "acme-ml-datasets")
ARTIFACT_BUCKETS = ("acme-build-artifacts", "acme-terraform-state", "acme-app-config")
WEB_PATHS = (
    "/dashboards/revenue",
    "/dashboards/funnel",
    "/api/v1/orders",
    "/api/v1/customers/search",
    "/wiki/runbooks",
    "/admin/users",
    "/jira/browse",
)
FILE_PATHS = ("/shares/finance/q3.xlsx", "/shares/eng/design.pdf", "/shares/hr/policies.docx")

# Tor exit range used by the stolen-credentials scenario (Germany-hosted relays).
TOR_NETWORK = "185.220.101"
ATTACKER_NETWORKS = (("185.220.101", "DE"), ("45.155.205", "RU"), ("103.251.167", "VN"))


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One kind of thing an entity does; ``kind`` selects the record builder.

    ``fmt`` is "cloudtrail" | "ecs" | "inference". For CloudTrail ``source`` is the
    eventSource and ``name`` the eventName; for ECS ``source`` is the event
    category and ``name`` the event.action; for inference ``name`` is the model.
    """

    fmt: str
    source: str
    name: str
    kind: str
    read_only: bool = True
    resources: tuple[str, ...] = ()
    bytes_scale: float = 1.0
    weight: float = 1.0


def ct(source: str, name: str, kind: str = "api", **kw: object) -> ActionSpec:
    """Shorthand for a CloudTrail action spec."""
    return ActionSpec("cloudtrail", f"{source}.amazonaws.com", name, kind, **kw)  # type: ignore[arg-type]


def ecs(category: str, name: str, **kw: object) -> ActionSpec:
    """Shorthand for an ECS action spec (kind = category)."""
    return ActionSpec("ecs", category, name, category, **kw)  # type: ignore[arg-type]


# Request parameters for generic management calls (shared, never mutated).
API_PARAMS: dict[str, dict[str, object] | None] = {
    "DescribeInstances": {"instancesSet": {}, "filterSet": {}},
    "GetParameter": {"name": "/app/prod/db-url", "withDecryption": True},
    "Decrypt": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
    "GenerateDataKey": {"keySpec": "AES_256"},
    "FilterLogEvents": {"logGroupName": "/aws/lambda/api", "limit": 100},
    "StartQueryExecution": {"workGroup": "analysts", "queryExecutionContext": {"database": "dwh"}},
    "GetQueryResults": {"maxResults": 1000},
    "ListUsers": {"maxItems": 100},
    "ListRoles": {"maxItems": 100},
    "GetUser": {"userName": "self"},
    "GetTrailStatus": {"name": "org-trail"},
    "DescribeTrails": {"includeShadowTrails": True},
    "UpdateFunctionCode": {"functionName": "api-handler", "publish": True},
    "AssumeRole": {"roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/deploy", "durationSeconds": 3600},
}

INFERENCE_MODELS = ("fraud-scorer", "churn-predictor", "image-tagger", "support-chat")
S3_KEYS = tuple(
    f"{folder}/part-{i:04d}.parquet" for folder in ("daily", "exports", "raw") for i in range(8)
)
