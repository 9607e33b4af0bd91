"""HTTP from the machine running lbstack to the balancer: ``lbstack test`` (N requests, their spread
over the instances, status codes and latency) and ``lbstack monitor`` (health endpoints probed
repeatedly, state transitions logged). Bounded: a fixed number of requests or rounds, each with a
timeout."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

INSTANCE_HEADER = "X-Lbstack-Instance"


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (see error)
    instance: str | None
    seconds: float
    error: str | None = None


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme == "https":
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False  # rehearsal hosts use self-signed certificates
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def get(url: str, timeout: float = 5.0, conn: http.client.HTTPConnection | None = None) -> tuple[Answer, http.client.HTTPConnection | None]:
    """One GET; keeps ``conn`` alive for the next request when the server allows it."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    try:
        conn = conn or _connection(url, timeout)
        conn.request("GET", path, headers={"User-Agent": "lbstack-probe"})
        response = conn.getresponse()
        response.read()
        answer = Answer(response.status, response.getheader(INSTANCE_HEADER), time.monotonic() - started)
        if response.will_close:
            conn.close()
            conn = None
        return answer, conn
    except (OSError, http.client.HTTPException) as exc:
        if conn is not None:
            conn.close()
        return Answer(None, None, time.monotonic() - started, _error_kind(exc)), None


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    return f"{type(exc).__name__}: {exc}"[:120]


def send(url: str, requests: int, concurrency: int, timeout: float = 10.0) -> list[Answer]:
    """``requests`` GETs of ``url`` over ``concurrency`` keep-alive connections."""
    lock = threading.Lock()
    remaining = [requests]
    answers: list[Answer] = []

    def worker() -> None:
        conn = None
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            answer, conn = get(url, timeout, conn)
            with lock:
                answers.append(answer)
        if conn is not None:
            conn.close()

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, requests))) as pool:
        for future in [pool.submit(worker) for _ in range(max(1, min(concurrency, requests)))]:
            future.result()
    return answers


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-len(ordered) * pct // 100))))
    return ordered[rank - 1]


def summarize(answers: list[Answer], instances: list[str], *, max_error_rate: float, sticky: bool,
              seconds: float) -> dict:
    """How the answers spread over ``instances``, their codes and latency, and the verdict."""
    codes = Counter(str(a.status) if a.status is not None else a.error for a in answers)
    spread = Counter(a.instance for a in answers if a.instance)
    errors = sum(1 for a in answers if a.status is None or a.status >= 500)
    ok_latency = [a.seconds for a in answers if a.status is not None]
    rate = errors / len(answers) if answers else 1.0
    problems = []
    if rate > max_error_rate:
        problems.append(f"error rate {rate:.2%} above {max_error_rate:.2%}")
    if sticky:
        if len(spread) != 1:
            problems.append(f"ip_hash affinity broken: answers came from {len(spread)} instances "
                            f"({', '.join(sorted(spread))})")
    else:
        missing = [name for name in instances if not spread.get(name)]
        if missing:
            problems.append(f"no answer from {', '.join(missing)}")
    unknown = sorted(set(spread) - set(instances))
    if unknown:
        problems.append(f"answers from instances the plan does not have: {', '.join(unknown)}")
    return {
        "requests": len(answers),
        "seconds": round(seconds, 3),
        "req_per_s": round(len(answers) / seconds, 1) if seconds > 0 else None,
        "status": dict(sorted(codes.items())),
        "errors": errors,
        "error_rate": round(rate, 5),
        "instances": {name: spread.get(name, 0) for name in instances} | {n: spread[n] for n in unknown},
        "latency_ms": {q: _ms(percentile(ok_latency, p)) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))}
                      | {"max": _ms(max(ok_latency) if ok_latency else None)},
        "sticky": sticky,
        "problems": problems,
        "ok": not problems,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


# ---------------------------------------------------------------------------------------------
# monitor


@dataclass
class Target:
    name: str  # "lb /health", "app3"
    url: str


@dataclass(frozen=True)
class Transition:
    time: str
    target: str
    url: str
    before: str | None  # None: first probe
    after: str  # "up" | "down"
    detail: str

    def to_data(self) -> dict:
        return {"event": "transition", **asdict(self)}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def probe_state(answer: Answer) -> tuple[str, str]:
    if answer.status == 200:
        return "up", f"200 in {answer.seconds * 1000:.0f} ms"
    if answer.status is None:
        return "down", answer.error or "no answer"
    return "down", f"HTTP {answer.status}"


def monitor(targets: list[Target], *, interval: float, rounds: int | None, duration: float | None,
            timeout: float, on_event: Callable[[dict], None],
            clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
            prober: Callable[[str, float], Answer] | None = None) -> dict:
    """Probe every target each round; call ``on_event`` for every probe and state transition.

    Stops after ``rounds`` rounds or ``duration`` seconds, whichever is given (one of them must
    be). Returns the summary: final state per target, transitions, rounds, and which targets were
    down at the end."""
    if rounds is None and duration is None:
        raise ValueError("monitor needs a bound: rounds or duration")
    probe = prober or (lambda url, t: get(url, t)[0])
    state: dict[str, str] = {}
    down_since: dict[str, float] = {}
    transitions: list[dict] = []
    started = clock()
    done = 0
    with ThreadPoolExecutor(max_workers=min(16, len(targets)) or 1) as pool:
        for _ in _rounds(rounds, duration, started, clock):
            round_started = clock()
            answers = list(pool.map(lambda t: probe(t.url, timeout), targets))
            stamp = now_iso()
            for target, answer in zip(targets, answers):
                current, detail = probe_state(answer)
                on_event({"event": "probe", "time": stamp, "target": target.name, "state": current,
                          "status": answer.status, "ms": round(answer.seconds * 1000, 1), "detail": detail})
                before = state.get(target.name)
                if before != current:
                    event = Transition(stamp, target.name, target.url, before, current, detail).to_data()
                    if current == "down":
                        down_since[target.name] = round_started
                    elif target.name in down_since:
                        event["down_for_s"] = round(round_started - down_since.pop(target.name), 1)
                    transitions.append(event)
                    on_event(event)
                state[target.name] = current
            done += 1
            left = interval - (clock() - round_started)
            if left > 0 and not _last(done, rounds, duration, started, clock, interval):
                sleep(left)
    still_down = sorted(name for name, s in state.items() if s != "up")
    return {"rounds": done, "seconds": round(clock() - started, 1), "targets": len(targets),
            "final": state, "transitions": transitions, "down_at_end": still_down, "ok": not still_down}


def _rounds(rounds: int | None, duration: float | None, started: float, clock) -> Iterator[int]:
    n = 0
    while True:
        if rounds is not None and n >= rounds:
            return
        if duration is not None and n > 0 and clock() - started >= duration:
            return
        yield n
        n += 1


def _last(done: int, rounds: int | None, duration: float | None, started: float, clock, interval: float) -> bool:
    if rounds is not None and done >= rounds:
        return True
    return duration is not None and clock() - started + interval > duration


def post_webhook(url: str, event: dict, timeout: float = 5.0) -> str | None:
    """POST ``event`` as JSON; returns an error text or None. A failing webhook never stops the
    monitor."""
    request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "lbstack-monitor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return None
    except (OSError, urllib.error.URLError) as exc:
        return f"{type(exc).__name__}: {exc}"
