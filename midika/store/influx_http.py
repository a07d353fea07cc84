"""The InfluxDB store's two HTTP paths, with every failure translated into a midika StoreError.

Writes go through influxdb-client's synchronous write API (`POST /api/v2/write`, served by InfluxDB
1.8+, 2.x and 3.x), so a failed write raises in the caller instead of vanishing in a background batch.
Failures are classified as Telegraf's outputs do: 429, 5xx and connection errors are retryable
(StoreUnavailable); 413 splits the batch in halves and retries them; other 4xx are permanent
(StoreError), and a 1.x "partial write" is permanent too — the caller must record it. When a split
batch fails halfway, the halves already written come back as duplicates on the caller's retry.

Reads are InfluxQL over the v1 `/query` endpoint (served by 1.x, 2.x with DBRP mappings and 3.x),
through httpx: one POST can carry several `;`-separated statements.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, cast

import httpx
import urllib3
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from midika.errors import StoreError, StoreUnavailable

Row = dict[str, Any]
Precision = Literal["us", "ns"]  # the values of the client's WritePrecision, a class of str constants


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _message(body: str | bytes | None) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else (body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(parsed, dict):
        return str(parsed.get("message") or parsed.get("error") or parsed)[:500]
    return text.strip()[:500]


class InfluxHttp:
    """Writes line protocol to a bucket and runs InfluxQL against a database/retention policy."""

    def __init__(
        self,
        *,
        url: str,
        bucket: str,
        database: str,
        retention_policy: str | None,
        token: str | None,
        username: str | None,
        password: str | None,
        org: str,
        timeout_s: float,
    ) -> None:
        self.url = url.rstrip("/")
        self.bucket = bucket
        self._query_params = {"db": database} | ({"rp": retention_policy} if retention_policy else {})
        # InfluxDB 1.x takes "user:password" where 2.x/3.x take an API token, on both endpoints;
        # /query also understands basic auth on every version, which 1.x needs there.
        write_token = token if token is not None else f"{username}:{password or ''}" if username else None
        auth: httpx.Auth | None = None
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Token {token}"
        elif username is not None:
            auth = httpx.BasicAuth(username, password or "")
        # No retries inside the client: the caller decides, and a retry must not hide a failure.
        self._client = InfluxDBClient(
            url=self.url, token=write_token or "", org=org, timeout=int(timeout_s * 1000), retries=False
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._http = httpx.Client(base_url=self.url, auth=auth, headers=headers, timeout=timeout_s)

    def write(self, lines: Sequence[str], *, precision: Precision = "us") -> None:
        """Write line-protocol points; raise StoreUnavailable (retryable) or StoreError on failure."""
        if not lines:
            return
        try:
            self._write_api.write(
                bucket=self.bucket,
                record="\n".join(lines).encode(),
                write_precision=cast(WritePrecision, precision),
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 413 and len(lines) > 1:
                half = len(lines) // 2
                self.write(lines[:half], precision=precision)
                self.write(lines[half:], precision=precision)
                return
            detail = f"InfluxDB write of {len(lines)} points failed: HTTP {status} {_message(exc.body)}"
            if _retryable(status):
                raise StoreUnavailable(detail) from exc
            raise StoreError(detail) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        except InfluxDBError as exc:
            raise StoreError(f"InfluxDB write of {len(lines)} points failed: {exc}") from exc

    def query(self, statements: Sequence[str], *, epoch: str = "u") -> list[list[Row]]:
        """Run InfluxQL statements in one request; per statement, its rows with the group tags merged."""
        if not statements:
            return []
        data = self._query_params | {"q": ";\n".join(statements), "epoch": epoch}
        try:
            response = self._http.post("/query", data=data)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        if response.status_code >= 300:
            detail = f"InfluxQL query failed: HTTP {response.status_code} {_message(response.content)}"
            if _retryable(response.status_code):
                raise StoreUnavailable(detail)
            raise StoreError(detail)
        try:
            results = response.json()["results"]
        except (ValueError, KeyError) as exc:
            raise StoreError(f"InfluxQL answer is not a result set: {response.text[:200]!r}") from exc
        out: list[list[Row]] = [[] for _ in statements]
        for result in results:
            if "error" in result:
                raise StoreError(f"InfluxQL query failed: {result['error']}")
            if result.get("partial"):
                raise StoreError("InfluxQL answer truncated by the server (partial result)")
            rows = out[int(result.get("statement_id", 0))]
            for series in result.get("series", ()):
                if series.get("partial"):
                    # A server-side max-row-limit cut the answer; returning it would lose data silently.
                    raise StoreError("InfluxQL answer truncated by the server's max-row-limit")
                tags = series.get("tags") or {}
                columns = series["columns"]
                rows.extend(dict(zip(columns, values, strict=True)) | tags for values in series["values"])
        return out

    def close(self) -> None:
        """Close both HTTP connection pools."""
        self._write_api.close()  # type: ignore[no-untyped-call]  # the client is untyped here
        self._client.close()  # type: ignore[no-untyped-call]
        self._http.close()
