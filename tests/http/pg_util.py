"""The test PostgreSQL server for the HTTP tests that use one
(test_replicas.py, test_crash_safety.py): its URL from ctest's fixture
"pg" (ALIGND_TEST_PG_URL_FILE, written by tests/tools/pg_server.sh) or
ALIGND_TEST_PG_URL, and SQL through psql. Standard library only."""
import os
import subprocess


def pg_url():
    """The server's URL, or "" when none is configured."""
    url = os.environ.get("ALIGND_TEST_PG_URL", "")
    path = os.environ.get("ALIGND_TEST_PG_URL_FILE", "")
    if not url and path and os.path.exists(path):
        with open(path) as f:
            url = f.readline().strip()
    return url


def psql(url, sql):
    """Runs sql (stops at the first error); its output, unaligned."""
    r = subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise AssertionError(f"psql: {sql[:200]}: {r.stderr}")
    return r.stdout


def with_schema(url, schema):
    """url with search_path set to schema (a test's own schema)."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
