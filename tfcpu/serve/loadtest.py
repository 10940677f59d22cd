"""``tfcpu loadtest URL``: how much traffic a served model takes, and at what latency.

A client of the two REST protocols and nothing else (it shares no code with the server's internals
beyond the dtype names of the KServe spec): it reads the model's signature from the server
(``GET /v2/models/NAME``), builds one request of ``batch`` random rows per input, then drives
levels of load and measures each:

* **closed loop** (``concurrency=(1, 2, 4, ...)``): that many clients, each sending its next request
  when the last one is answered — the throughput a given concurrency gets;
* **open loop** (``rates=(50, 100, ...)`` requests/s): requests start on a fixed schedule whatever
  the answers do — the latency a given arrival rate sees, queueing included.

Per level: requests, answers by status, errors by kind (``http_503``, ``http_400``, ``timeout``,
``connect``, ...), throughput (answered requests and rows per second), p50/p90/p99 latency of the
successful answers. The result names the highest throughput whose p99 stays under ``p99_ms``.

Every loop is bounded twice, by ``duration`` and by ``max_requests`` per level, and stops by itself;
targets are this machine's loopback addresses only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from tfcpu._codec import Serializable
from tfcpu.errors import ConfigError, RunnerError

__all__ = ["LoadLevel", "LoadTestResult", "check_loopback", "loadtest"]

_NUMPY = {"BOOL": "bool", "UINT8": "uint8", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
          "FP16": "float16", "FP32": "float32", "FP64": "float64"}  # fmt: skip


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash, if its host is this machine's loopback; ConfigError otherwise."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    host = parsed.hostname or ""
    try:
        loop = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loop = False
    if parsed.scheme not in ("http", "https") or not loop:
        raise ConfigError(
            "tfcpu loadtest sends only to this machine's loopback addresses",
            where=url,
            hint="serve the model here and test http://127.0.0.1:PORT (or localhost, [::1])",
        )
    return f"{parsed.scheme}://{parsed.netloc}"


@dataclass(frozen=True)
class LoadLevel(Serializable):
    """One measured level of load."""

    mode: str  # "closed" or "open"
    level: float  # clients (closed) or requests/s (open)
    requests: int
    ok: int
    seconds: float
    rows: int
    errors: Mapping[str, int] = field(default_factory=dict)
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan

    _extra_fields = ("throughput", "rows_per_s")

    @property
    def throughput(self) -> float:
        """Answered requests per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class LoadTestResult(Serializable):
    """Every level of a load test, and the best one under the p99 target."""

    url: str
    model: str
    protocol: str
    batch: int
    p99_target_ms: float
    levels: tuple[LoadLevel, ...]

    _extra_fields = ("best",)

    @property
    def best(self) -> LoadLevel | None:
        """The level with the highest throughput whose p99 is under the target and that had no errors."""
        good = [lv for lv in self.levels if lv.ok and lv.p99_ms <= self.p99_target_ms and not lv.errors]
        return max(good, key=lambda lv: lv.throughput, default=None)

    def _rows(self) -> list[list[str]]:
        rows = []
        for lv in self.levels:
            level = f"{lv.level:g} clients" if lv.mode == "closed" else f"{lv.level:g} req/s"
            errors = ", ".join(f"{k} {v}" for k, v in sorted(lv.errors.items())) or "-"
            rows.append([level, f"{lv.throughput:.1f}", f"{lv.rows_per_s:.1f}", f"{lv.p50_ms:.1f}", f"{lv.p90_ms:.1f}",
                         f"{lv.p99_ms:.1f}", str(lv.requests), errors])  # fmt: skip
        return rows

    _COLUMNS = ("load", "req/s", "rows/s", "p50 ms", "p90 ms", "p99 ms", "sent", "errors")

    def _title(self) -> str:
        best = self.best
        head = f"{self.model} at {self.url} ({self.protocol}, {self.batch} row(s) per request)"
        if best is None:
            return f"{head}: no level kept p99 under {self.p99_target_ms:g} ms without errors"
        return f"{head}: best {best.throughput:.1f} req/s with p99 {best.p99_ms:.1f} ms <= {self.p99_target_ms:g} ms"

    def __rich__(self) -> Any:
        from tfcpu._render import rich_table

        return rich_table(self._title(), self._COLUMNS, self._rows())

    def _repr_html_(self) -> str:
        from tfcpu._render import html_table

        return html_table(self._title(), self._COLUMNS, self._rows())

    def __str__(self) -> str:
        return "\n".join([self._title(), *("  ".join(r) for r in self._rows())])

    def plot(self, path: str | Path) -> Path:
        """A PNG of p50 and p99 latency against throughput, one point per level."""
        from tfcpu._plot import bar_or_line_png

        series = {
            "p50": [(lv.throughput, lv.p50_ms) for lv in self.levels if lv.ok],
            "p99": [(lv.throughput, lv.p99_ms) for lv in self.levels if lv.ok],
        }
        return bar_or_line_png(path, series, title=self._title()[:90], xlabel="answered requests/s",
                               ylabel="latency (ms)")  # fmt: skip


# -- the requests ---------------------------------------------------------------------------------
async def _signature(session: Any, base: str, model: str) -> list[dict[str, Any]]:
    import json

    async with session.get(f"{base}/v2/models/{model}") as response:
        text = await response.text()
    if response.status != 200:
        raise ConfigError(f"the server does not describe model {model!r}", where=f"{base}/v2/models/{model}",
                          why=f"HTTP {response.status}: {text[:200]}",
                          hint="check the name (--model) and that the server is ready")  # fmt: skip
    inputs: list[dict[str, Any]] = json.loads(text)["inputs"]
    return inputs


def _payloads(inputs: list[dict[str, Any]], batch: int, protocol: str, shapes: Mapping[str, Sequence[int]],
              seed: int, binary: bool = False) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    import json

    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for spec in inputs:
        name, datatype = spec["name"], spec["datatype"]
        if datatype not in _NUMPY:
            raise ConfigError(f"input {name!r} is {datatype}: loadtest makes numeric inputs only")
        dims = list(shapes.get(name) or [batch, *[8 if d < 0 else d for d in spec["shape"][1:]]])
        dtype = _NUMPY[datatype]
        if np.issubdtype(np.dtype(dtype), np.integer):
            arrays[name] = rng.integers(0, 2, size=dims).astype(dtype)  # ids and masks within any vocabulary
        else:
            arrays[name] = rng.uniform(0, 1, size=dims).astype(dtype)
    body: dict[str, Any]
    if protocol == "kserve" and binary:  # the binary tensor extension, as tritonclient sends by default
        datatypes = {v: k for k, v in _NUMPY.items()}
        head = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": datatypes[a.dtype.name],
                            "parameters": {"binary_data_size": a.nbytes}} for n, a in arrays.items()],
                "parameters": {"binary_data_output": True}}  # fmt: skip
        header = json.dumps(head).encode()
        raw = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())
        return header + raw, {"content-type": "application/octet-stream",
                              "inference-header-content-length": str(len(header))}  # fmt: skip
    if protocol == "kserve":
        body = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": next(k for k, v in _NUMPY.items()
                            if v == a.dtype.name), "data": a.ravel().tolist()} for n, a in arrays.items()]}  # fmt: skip
    elif len(arrays) == 1:
        body = {"instances": next(iter(arrays.values())).tolist()}
    else:
        body = {"inputs": {n: a.tolist() for n, a in arrays.items()}}
    return json.dumps(body).encode(), {"content-type": "application/json"}


def _kind(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    return type(exc).__name__


class _Recorder:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.sent = 0

    async def one(self, client: Any, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        self.sent += 1
        start = time.perf_counter()
        try:
            async with client.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
            self.errors[_kind(exc)] += 1
            return
        if status == 200:
            self.latencies.append(time.perf_counter() - start)
        else:
            self.errors[f"http_{status}"] += 1

    def level(self, mode: str, level: float, seconds: float, batch: int) -> LoadLevel:
        ms = np.array(self.latencies) * 1000.0
        pct = [float(np.percentile(ms, q)) if len(ms) else math.nan for q in (50, 90, 99)]
        return LoadLevel(mode, level, self.sent, len(ms), seconds, len(ms) * batch, dict(self.errors), *pct)


Request = tuple[bytes, Mapping[str, str]]


async def _closed(client: Any, url: str, req: Request, clients: int, duration: float, cap: int) -> _Recorder:
    rec = _Recorder()
    end = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < end and rec.sent < cap:
            await rec.one(client, url, *req)

    await asyncio.gather(*(worker() for _ in range(clients)))
    return rec


async def _open(client: Any, url: str, req: Request, rate: float, duration: float, cap: int) -> _Recorder:
    rec = _Recorder()
    start = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    n = min(cap, max(1, int(rate * duration)))
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(rec.one(client, url, *req)))
    await asyncio.gather(*tasks)
    return rec


async def _run(base: str, model: str, protocol: str, levels: list[tuple[str, float]], *, batch: int,
               duration: float, max_requests: int, timeout: float, shapes: Mapping[str, Sequence[int]],
               seed: int, binary: bool) -> list[LoadLevel]:  # fmt: skip
    import aiohttp  # a C-accelerated client: the load generator shares the CPU with what it measures

    connector = aiohttp.TCPConnector(limit=1024)
    limit = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=limit, trust_env=False) as client:
        inputs = await _signature(client, base, model)
        req = _payloads(inputs, batch, protocol, shapes, seed, binary)
        url = f"{base}/v2/models/{model}/infer" if protocol == "kserve" else f"{base}/v1/models/{model}:predict"
        await _closed(client, url, req, 1, min(2.0, duration), 20)  # warm the connection and the server
        out = []
        for mode, level in levels:
            start = time.perf_counter()
            if mode == "closed":
                rec = await _closed(client, url, req, int(level), duration, max_requests)
            else:
                rec = await _open(client, url, req, level, duration, max_requests)
            out.append(rec.level(mode, level, time.perf_counter() - start, batch))
        return out


def loadtest(
    url: str,
    model: str,
    *,
    protocol: str = "kserve",
    concurrency: Sequence[int] = (1, 2, 4, 8, 16, 32),
    rates: Sequence[float] = (),
    duration: float = 10.0,
    batch: int = 1,
    p99_ms: float = 100.0,
    max_requests: int = 100_000,
    timeout: float = 30.0,
    shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    binary: bool = True,
) -> LoadTestResult:
    """Load-test the model ``model`` served at ``url`` (see the module docstring).

    Args:
        url: the server, ``http://127.0.0.1:8000`` (loopback only).
        model: the model's name on the server.
        protocol: ``"kserve"`` (v2 infer) or ``"tfserving"`` (``:predict``).
        concurrency: closed-loop levels (clients); empty to skip.
        rates: open-loop levels (requests per second); empty to skip.
        duration: seconds per level.
        batch: rows per request.
        p99_ms: the latency target the best level must meet.
        max_requests: requests per level at most.
        timeout: seconds before one request counts as a ``timeout`` error.
        shapes: full shapes of inputs with dynamic dimensions, by input name.
        seed: the random inputs' seed.
        binary: KServe only: send tensors and ask for the answers with the binary tensor extension
            (what tritonclient does by default) instead of JSON lists.

    Raises:
        ConfigError: a non-loopback URL, an unknown protocol, bad numbers, or a model the server does not have.
    """
    from tfcpu._numbers import check_number

    base = check_loopback(url)
    if protocol not in ("kserve", "tfserving"):
        raise ConfigError(f"unknown protocol {protocol!r}", hint="kserve or tfserving")
    where = "loadtest"
    for name, value in (("duration", duration), ("p99_ms", p99_ms), ("timeout", timeout)):
        check_number(value, name, where=where, above=0, maximum=7 * 24 * 3600.0)
    check_number(batch, "batch", where=where, integer=True, minimum=1, maximum=1_000_000)
    check_number(max_requests, "max_requests", where=where, integer=True, minimum=1, maximum=10_000_000)
    levels = [("closed", float(check_number(c, "concurrency", where=where, minimum=1, integer=True, maximum=1024)))
              for c in concurrency] + [("open", float(check_number(r, "rate", where=where, above=0, maximum=100_000)))
                                       for r in rates]  # fmt: skip
    if not levels:
        raise ConfigError("no load level", hint="give --concurrency and/or --rate")
    try:
        measured = asyncio.run(_run(base, model, protocol, levels, batch=int(batch),
                                    duration=duration, max_requests=max_requests, timeout=timeout,
                                    shapes=shapes or {}, seed=seed, binary=binary))  # fmt: skip
    except OSError as exc:
        raise RunnerError("cannot reach the server", where=base, why=str(exc)) from exc
    return LoadTestResult(base, model, protocol, batch, p99_ms, tuple(measured))
