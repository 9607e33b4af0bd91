"""The k6 scripts in k6/, run under Node with k6's modules stubbed (k6/check/run.mjs): they load,
the random-question ramp and the thresholds are the seed's, every request goes to API_BASE_URL
(or its site root for /exam), the checks pass on the app's answers and fail on broken or wrong
ones, each response is counted against the instance that served it, and the think time is what
the scripts say. k6 itself is not needed; Node (>= 20.6) is, and its absence fails the tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lbstack import REPO_ROOT

K6_DIR = REPO_ROOT / "k6"
SCRIPTS = ["simple-api-test.js", "random-question-test.js", "ujian-api.js", "users-held.js"]

# the seed's ramp ("K6 Load Testing Commands"), each stage 2m there
SEED_TARGETS = [200, 500, 1000, 1500, 2000, 1000, 500, 100]
SEED_THRESHOLDS = {
    "http_req_duration": ["p(95)<1500"],
    "http_req_failed": ["rate<0.02"],
    "errors": ["rate<0.02"],
}
DEFAULT_INSTANCES = [f"app{i}" for i in range(1, 6)]  # the stub answers from these in turn

# which endpoints each script requests (path on the site), and its endpoint tags
ENDPOINTS = {
    "simple-api-test.js": {"/api/questions/random", "/api/ujian/health"},
    "random-question-test.js": {"/api/questions/random"},
    "ujian-api.js": {"/exam", "/api/session", "/api/questions/random", "/api/ujian/health"},
    "users-held.js": {"/exam", "/api/session", "/api/questions/random", "/api/ujian/health"},
}
EXTRA_THRESHOLDS = {  # beyond the seed's three and the per-instance ones
    "simple-api-test.js": {},
    "random-question-test.js": {},
    "ujian-api.js": {f"http_req_duration{{endpoint:{e}}}": ["p(95)<1500"]
                     for e in ("exam", "random_question", "session", "health")},
}
EXTRA_THRESHOLDS["users-held.js"] = EXTRA_THRESHOLDS["ujian-api.js"]  # the bench's probe: the same test

# k6's built-in metrics and their types; which aggregations each type's thresholds may use
BUILTIN_METRICS = {
    "checks": "rate", "data_received": "counter", "data_sent": "counter",
    "dropped_iterations": "counter", "http_req_blocked": "trend", "http_req_connecting": "trend",
    "http_req_duration": "trend", "http_req_failed": "rate", "http_req_receiving": "trend",
    "http_req_sending": "trend", "http_req_tls_handshaking": "trend", "http_req_waiting": "trend",
    "http_reqs": "counter", "iteration_duration": "trend", "iterations": "counter",
    "vus": "gauge", "vus_max": "gauge",
}
AGGREGATIONS = {
    "counter": {"count", "rate"}, "gauge": {"value"}, "rate": {"rate"},
    "trend": {"avg", "min", "med", "max", "p"},
}
THRESHOLD_KEY = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(?:\{([^{}]+)\})?$")
THRESHOLD_EXPR = re.compile(
    r"^\s*(avg|min|med|max|count|rate|value|p\(\d+(?:\.\d+)?\))\s*(<=|>=|===|==|!=|<|>)\s*-?\d+(?:\.\d+)?\s*$")
K6_DURATION = re.compile(r"^(\d+(\.\d+)?(ms|s|m|h))+$")


# --- running a script -------------------------------------------------------------------------

def node() -> str:
    """The node binary ($NODE, else node on PATH), >= 20.6; a clear failure, not a skip, without."""
    candidate = os.environ.get("NODE") or shutil.which("node")
    if not candidate or not Path(candidate).exists():
        pytest.fail("node is not installed (or $NODE does not exist): the k6 scripts are checked with "
                    "Node >= 20.6 (Debian: apt-get install nodejs; CI images have it)", pytrace=False)
    version = subprocess.run([candidate, "--version"], check=False, capture_output=True, text=True, timeout=30).stdout
    match = re.match(r"v(\d+)\.(\d+)", version)
    if not match or (int(match[1]), int(match[2])) < (20, 6):
        pytest.fail(f"{candidate} is {version.strip() or 'not a working node'}: the k6 checks need "
                    "Node >= 20.6 (module.register)", pytrace=False)
    return candidate


def _node_run(script: str, env: dict[str, str] | None, iterations: int, mode: str,
              k6_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(), str(k6_dir / "check" / "run.mjs"), str(k6_dir / script), str(iterations)],
        check=False, capture_output=True, text=True, timeout=60, cwd=k6_dir,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "K6_CHECK_ENV": json.dumps(env or {}),
             "K6_CHECK_MODE": mode},
    )


def run(script: str, env: dict[str, str] | None = None, iterations: int = 5, mode: str = "ok",
        k6_dir: Path = K6_DIR) -> dict:
    """What the script does under the stubs: options, requests, checks, metrics, sleeps."""
    result = _node_run(script, env, iterations, mode, k6_dir)
    assert result.returncode == 0, f"{script} failed under node:\n{result.stderr}"
    return json.loads(result.stdout)


def run_error(script: str, env: dict[str, str]) -> str:
    """The error a script stops with at load (it must stop)."""
    result = _node_run(script, env, 1, "ok", K6_DIR)
    assert result.returncode != 0, f"{script} accepted {env}"
    return result.stderr


# --- what is checked, as functions returning problems (so a defect is shown to be caught) ----

def ramp_problems(options: dict, stage_duration: str) -> list[str]:
    """The seed's ramp (then optionally down to 0), every stage lasting stage_duration."""
    problems = []
    stages = options.get("stages")
    if not isinstance(stages, list):
        return [f"no stages list: {stages!r}"]
    targets = [s.get("target") for s in stages]
    if targets not in (SEED_TARGETS, SEED_TARGETS + [0]):
        problems.append(f"targets {targets} are not the seed's {SEED_TARGETS} (then 0)")
    problems += [f"stage {i} lasts {s.get('duration')!r}, not {stage_duration!r}"
                 for i, s in enumerate(stages) if s.get("duration") != stage_duration]
    problems += [f"stage {i} has keys {sorted(s)}" for i, s in enumerate(stages)
                 if set(s) != {"duration", "target"}]
    problems += [f"{key} beside stages (conflicts with the ramp)"
                 for key in ("scenarios", "vus", "duration", "iterations") if key in options]
    return problems


def threshold_problems(thresholds: dict, script: str, instances: list[str]) -> list[str]:
    """Exactly the seed's three, the script's extras and one count>0 per expected instance."""
    expected = dict(SEED_THRESHOLDS, **EXTRA_THRESHOLDS[script],
                    **{f"lb_instance_responses{{instance:{name}}}": ["count>0"] for name in instances})
    problems = [f"{key}: {thresholds.get(key)!r}, expected {value!r}"
                for key, value in expected.items() if thresholds.get(key) != value]
    problems += [f"unexpected threshold {key}: {thresholds[key]!r}" for key in thresholds if key not in expected]
    return problems


def threshold_syntax_problems(out: dict) -> list[str]:
    """As k6 validates thresholds: a known metric, an aggregation its type has, a valid expression,
    and a tag selector that matches something the script emits."""
    custom = {name: m["type"] for name, m in out["metrics"].items()}
    problems = []
    for key, expressions in (out["options"].get("thresholds") or {}).items():
        match = THRESHOLD_KEY.match(key)
        if not match:
            problems.append(f"{key}: not a metric name with an optional {{tag:value}} selector")
            continue
        name, selector = match[1], match[2]
        kind = BUILTIN_METRICS.get(name) or custom.get(name)
        if kind is None:
            problems.append(f"{key}: no metric {name} (neither k6's nor the script's)")
            continue
        for expression in expressions:
            parsed = THRESHOLD_EXPR.match(expression)
            if not parsed:
                problems.append(f"{key}: {expression!r} is not a threshold expression")
            elif parsed[1].split("(")[0] not in AGGREGATIONS[kind]:
                problems.append(f"{key}: {parsed[1]} is not an aggregation of a {kind} metric")
        if selector:
            wanted = dict(part.split(":", 1) for part in selector.split(","))
            if name in custom:
                tag_sets = [sample["tags"] for sample in out["metrics"][name]["samples"]]
            else:
                tag_sets = [request["tags"] for request in out["requests"]]
            if not any(all(tags.get(k) == v for k, v in wanted.items()) for tags in tag_sets):
                problems.append(f"{key}: no request or sample carries {wanted}")
    return problems


def url_problems(requests: list[dict], api: str, site: str) -> list[str]:
    """Every request under api (the API) or site/exam (the exam page); no doubled slashes."""
    problems = []
    for request in requests:
        url = request["url"]
        if not (url.startswith(api + "/") or url == site + "/exam"):
            problems.append(f"{url} is neither under {api}/ nor {site}/exam")
        if "//" in url.split("://", 1)[1]:
            problems.append(f"{url} has an empty path segment")
    return problems


def paths(out: dict) -> set[str]:
    return {re.sub(r"^https?://[^/]+", "", r["url"]) for r in out["requests"]}


# --- the tests --------------------------------------------------------------------------------

def test_node_missing_is_a_failure_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE", "/nonexistent/node")
    with pytest.raises(pytest.fail.Exception, match="node is not installed"):
        node()


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_loads_and_checks_every_answer(script: str) -> None:
    out = run(script)
    assert {"default", "options"} <= set(out["exports"])
    assert out["requests"], "no request made"
    assert paths(out) == ENDPOINTS[script]
    assert all(r["method"] == "GET" and r["tags"].get("endpoint") for r in out["requests"])
    assert out["checks"], "no checks defined"
    failing = {name: c for name, c in out["checks"].items() if c["fails"]}
    assert not failing, f"checks fail on the app's own answers: {failing}"
    # one errors sample and one instance sample per response: the seed's errors Rate sees them all
    assert len(out["metrics"]["errors"]["samples"]) == len(out["requests"])
    assert out["metrics"]["errors"]["type"] == "rate"
    assert {s["value"] for s in out["metrics"]["errors"]["samples"]} == {0}


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_endpoint_has_status_json_and_instance_checks(script: str) -> None:
    checks = run(script)["checks"]
    kinds = {name.split(":")[0] for name in checks}
    expected = {"/api/questions/random": "question", "/api/ujian/health": "health",
                "/api/session": "session", "/exam": "exam"}
    assert kinds == {expected[p] for p in ENDPOINTS[script]}
    for kind in kinds:
        names = [n for n in checks if n.startswith(kind + ":")]
        assert f"{kind}: status 200" in names
        assert any("X-Lbstack-Instance" in n for n in names), names
        assert len(names) >= 3, names  # status, body, instance


@pytest.mark.parametrize("script", SCRIPTS)
def test_checks_fail_on_nginx_errors(script: str) -> None:
    out = run(script, mode="broken")
    passing = {name: c for name, c in out["checks"].items() if c["passes"]}
    assert not passing, f"checks pass on 502 pages: {passing}"
    assert {s["value"] for s in out["metrics"]["errors"]["samples"]} == {1}
    assert {s["tags"]["instance"] for s in out["metrics"]["lb_instance_responses"]["samples"]} == {"none"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_checks_read_the_bodies_not_only_the_status(script: str) -> None:
    out = run(script, mode="degraded")  # 200s from an instance, with the wrong bodies
    for name, result in out["checks"].items():
        if "status 200" in name or "X-Lbstack-Instance" in name:
            assert result["fails"] == 0, name
        else:
            assert result["passes"] == 0, f"{name} passes on a wrong body"
    assert {s["value"] for s in out["metrics"]["errors"]["samples"]} == {1}


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_response_is_counted_against_its_instance(script: str) -> None:
    out = run(script)
    samples = out["metrics"]["lb_instance_responses"]
    assert samples["type"] == "counter"
    served = [s["tags"]["instance"] for s in samples["samples"]]
    assert len(served) == len(out["requests"])
    # the stub answers from app1..app5 in turn: the counter must follow it response by response
    assert served == [DEFAULT_INSTANCES[i % 5] for i in range(len(served))]
    assert all(s["value"] == 1 and s["tags"].get("endpoint") for s in samples["samples"])


@pytest.mark.parametrize("script", SCRIPTS)
def test_thresholds_are_the_seeds(script: str) -> None:
    thresholds = run(script)["options"]["thresholds"]
    assert {k: thresholds[k] for k in SEED_THRESHOLDS} == SEED_THRESHOLDS
    assert threshold_problems(thresholds, script, DEFAULT_INSTANCES) == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_thresholds_are_valid_k6_thresholds(script: str) -> None:
    assert threshold_syntax_problems(run(script)) == []


@pytest.mark.parametrize("instances", ["3", "8", "0"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_lb_instances_sets_the_per_instance_thresholds(script: str, instances: str) -> None:
    thresholds = run(script, {"LB_INSTANCES": instances}, iterations=1)["options"]["thresholds"]
    names = [f"app{i}" for i in range(1, int(instances) + 1)]
    assert threshold_problems(thresholds, script, names) == []


@pytest.mark.parametrize("bad", ["five", "-1", "2.5"])
def test_bad_lb_instances_is_refused_by_name(bad: str) -> None:
    assert "LB_INSTANCES" in run_error("random-question-test.js", {"LB_INSTANCES": bad})


def test_random_question_ramp_is_the_seeds_two_minute_stages() -> None:
    options = run("random-question-test.js", iterations=1)["options"]
    assert ramp_problems(options, "2m") == []
    assert [s["target"] for s in options["stages"]][:8] == SEED_TARGETS


@pytest.mark.parametrize("duration", ["10s", "1m30s", "500ms"])
def test_random_question_stage_duration(duration: str) -> None:
    options = run("random-question-test.js", {"STAGE_DURATION": duration}, iterations=1)["options"]
    assert ramp_problems(options, duration) == []
    assert ramp_problems(options, "2m") != []  # the duration is really STAGE_DURATION's


@pytest.mark.parametrize("bad", ["2 minutes", "10", "abc"])
@pytest.mark.parametrize("script", ["random-question-test.js", "ujian-api.js", "users-held.js"])
def test_bad_stage_duration_is_refused_by_name(script: str, bad: str) -> None:
    assert "STAGE_DURATION" in run_error(script, {"STAGE_DURATION": bad})


WRONG_RAMPS = {
    "a stage missing": SEED_TARGETS[:4] + SEED_TARGETS[5:],
    "two stages swapped": [200, 500, 1500, 1000, 2000, 1000, 500, 100],
    "a different peak": [200, 500, 1000, 1500, 2500, 1000, 500, 100],
    "an extra stage": SEED_TARGETS + [50, 0],
    "reversed": SEED_TARGETS[::-1],
}


@pytest.mark.parametrize("targets", WRONG_RAMPS.values(), ids=WRONG_RAMPS.keys())
def test_ramp_problems_catches_wrong_ramps(targets: list[int]) -> None:
    options = {"stages": [{"duration": "10s", "target": t} for t in targets]}
    assert ramp_problems(options, "10s") != []


def test_ramp_problems_catches_wrong_durations_and_conflicting_keys() -> None:
    good = {"stages": [{"duration": "10s", "target": t} for t in SEED_TARGETS]}
    assert ramp_problems(good, "10s") == []
    one_long = {"stages": [dict(s) for s in good["stages"]]}
    one_long["stages"][3]["duration"] = "2m"
    assert ramp_problems(one_long, "10s") != []
    assert ramp_problems(dict(good, vus=10), "10s") != []
    assert ramp_problems({}, "10s") != []


def test_a_wrong_ramp_in_the_script_is_caught(tmp_path: Path) -> None:
    """Mutation of the real script: the same checks on a copy with two stages swapped fail."""
    copy = tmp_path / "k6"
    shutil.copytree(K6_DIR, copy)
    script = copy / "random-question-test.js"
    source = script.read_text()
    assert "1500, 2000" in source
    script.write_text(source.replace("1500, 2000", "2000, 1500", 1))
    options = run("random-question-test.js", {"STAGE_DURATION": "10s"}, iterations=1, k6_dir=copy)["options"]
    assert ramp_problems(options, "10s") != []


def test_threshold_checks_catch_wrong_thresholds() -> None:
    script = "random-question-test.js"
    good = dict(SEED_THRESHOLDS, **{f"lb_instance_responses{{instance:{n}}}": ["count>0"]
                                    for n in DEFAULT_INSTANCES})
    assert threshold_problems(good, script, DEFAULT_INSTANCES) == []
    for wrong in (dict(good, http_req_duration=["p(95)<2000"]), dict(good, http_req_failed=["rate<0.05"]),
                  {k: v for k, v in good.items() if k != "errors"}, dict(good, checks=["rate>0.9"])):
        assert threshold_problems(wrong, script, DEFAULT_INSTANCES) != []
    out = {"options": {"thresholds": {}}, "metrics": {"errors": {"type": "rate", "samples": []}},
           "requests": [{"tags": {"endpoint": "exam"}}]}
    for wrong in ({"errors": ["p(95)<1500"]}, {"erors": ["rate<0.02"]}, {"http_req_duration": ["p95<1500"]},
                  {"http_req_duration{endpoint:exams}": ["p(95)<1500"]}, {"http_reqs": ["avg<3"]}):
        out["options"]["thresholds"] = wrong
        assert threshold_syntax_problems(out) != [], wrong


@pytest.mark.parametrize("script", SCRIPTS)
def test_urls_default_to_localhost(script: str) -> None:
    out = run(script)
    assert url_problems(out["requests"], "http://localhost/api", "http://localhost") == []


API_BASES = {  # API_BASE_URL (and SITE_URL) -> the API root and the site root the URLs must use
    "rehearsal host": ({"API_BASE_URL": "http://10.213.1.2/api"}, "http://10.213.1.2/api", "http://10.213.1.2"),
    "trailing slash": ({"API_BASE_URL": "https://lb.example.test:8443/api/"},
                       "https://lb.example.test:8443/api", "https://lb.example.test:8443"),
    "under a prefix": ({"API_BASE_URL": "https://example.test/app/api"},
                       "https://example.test/app/api", "https://example.test/app"),
    "no /api suffix": ({"API_BASE_URL": "http://example.test/v1"}, "http://example.test/v1", "http://example.test"),
    "SITE_URL given": ({"API_BASE_URL": "http://api.example.test/api", "SITE_URL": "http://www.example.test/"},
                       "http://api.example.test/api", "http://www.example.test"),
}


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("env,api,site", API_BASES.values(), ids=API_BASES.keys())
def test_urls_follow_api_base_url(script: str, env: dict[str, str], api: str, site: str) -> None:
    out = run(script, env)
    assert url_problems(out["requests"], api, site) == []
    assert not any("localhost" in r["url"] for r in out["requests"])


def test_url_problems_catches_stray_urls() -> None:
    api, site = "http://h/api", "http://h"
    assert url_problems([{"url": "http://h/api/ujian/health"}, {"url": "http://h/exam"}], api, site) == []
    for url in ("http://localhost/api/ujian/health", "http://h/api//session", "http://h/apix/session",
                "http://h/exam/", "http://other/exam"):
        assert url_problems([{"url": url}], api, site) != [], url


@pytest.mark.parametrize("bad", ["localhost/api", "ftp://h/api"])
def test_a_non_http_api_base_url_is_refused_by_name(bad: str) -> None:
    assert "API_BASE_URL" in run_error("simple-api-test.js", {"API_BASE_URL": bad})


def test_simple_api_test_takes_vus_and_duration_from_the_command_line() -> None:
    """`k6 run --vus 1000 --duration 5m` as in the seed: no stages or scenarios to conflict."""
    options = run("simple-api-test.js", iterations=1)["options"]
    assert not {"stages", "scenarios", "iterations"} & set(options)
    assert isinstance(options["vus"], int) and K6_DURATION.match(options["duration"])


THINK = {  # script -> default think time range (s) per iteration's sleeps
    "simple-api-test.js": (0.8, 1.2),
    "random-question-test.js": (0.1, 1.0),
    "ujian-api.js": (0.1, 1.0),
    "users-held.js": (0.1, 1.0),
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_think_time(script: str) -> None:
    low, high = THINK[script]
    out = run(script, iterations=20)
    assert out["sleeps"] and all(low <= s <= high for s in out["sleeps"]), out["sleeps"]
    assert len(set(out["sleeps"])) > 1  # random, so VUs drift apart
    narrowed = run(script, {"THINK_MIN_S": "0.2", "THINK_MAX_S": "0.3"}, iterations=5)["sleeps"]
    assert narrowed and all(0.2 <= s <= 0.3 for s in narrowed), narrowed


def test_inverted_think_time_is_refused() -> None:
    result = _node_run("random-question-test.js", {"THINK_MIN_S": "2", "THINK_MAX_S": "1"}, 1, "ok", K6_DIR)
    assert result.returncode != 0 and "THINK_MAX_S" in result.stderr


def test_ujian_session_check_needs_the_counter_to_go_up() -> None:
    out = run("ujian-api.js", iterations=4)
    sessions = [r for r in out["requests"] if r["url"].endswith("/api/session")]
    assert len(sessions) == 4
    check = out["checks"]["session: counter goes up whichever instance answers"]
    assert check == {"passes": 4, "fails": 0, "tags": {"endpoint": "session"}}


def test_ujian_peak_vus() -> None:
    stages = run("ujian-api.js", {"PEAK_VUS": "2000", "STAGE_DURATION": "30s"}, iterations=1)["options"]["stages"]
    assert [s["target"] for s in stages] == [1000, 2000, 2000, 0]
    assert {s["duration"] for s in stages} == {"30s"}
    assert "PEAK_VUS" in run_error("ujian-api.js", {"PEAK_VUS": "0"})


def test_readme_documents_the_scripts_and_their_environment() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Load testing with k6", 1)
    assert len(section) == 2, "README has no 'Load testing with k6' section"
    text = section[1].split("\n## ", 1)[0]
    for script in SCRIPTS:
        assert f"k6/{script}" in text, script
    sources = "\n".join(p.read_text() for p in K6_DIR.glob("**/*.js"))
    names = set(re.findall(r"(?:env|numberFromEnv|durationFromEnv)\('([A-Z_]+)'", sources))
    assert {"API_BASE_URL", "STAGE_DURATION", "LB_INSTANCES"} <= names
    assert not [n for n in sorted(names) if f"`{n}`" not in text], "undocumented environment variables"


def test_users_held_probe_is_ujian_api_with_a_bounded_graceful_stop() -> None:
    """bench.users' probe: ujian-api.js's iteration, ramp and thresholds, as one ramping-vus
    scenario whose graceful ramp-down and stop are GRACEFUL_STOP (k6's 30 s by default)."""
    env = {"PEAK_VUS": "300", "STAGE_DURATION": "8s", "GRACEFUL_STOP": "5s"}
    probe = run("users-held.js", env, iterations=2)
    ujian = run("ujian-api.js", env, iterations=2)
    options = probe["options"]
    assert set(options) == {"scenarios", "thresholds", "noCookiesReset"}  # no top-level stages/vus to conflict
    assert options["thresholds"] == ujian["options"]["thresholds"]
    # each exam taker keeps its session for the whole run (k6 clears cookies per iteration)
    assert options["noCookiesReset"] is True and ujian["options"]["noCookiesReset"] is True
    (scenario,) = options["scenarios"].values()
    assert scenario == {"executor": "ramping-vus", "startVUs": 0, "stages": ujian["options"]["stages"],
                        "gracefulRampDown": "5s", "gracefulStop": "5s"}
    assert [s["target"] for s in scenario["stages"]] == [150, 300, 300, 0]
    assert [r["url"] for r in probe["requests"]] == [r["url"] for r in ujian["requests"]]
    default = run("users-held.js", {"PEAK_VUS": "10"}, iterations=1)["options"]["scenarios"]
    assert {s["gracefulStop"] for s in default.values()} == {"30s"}
    assert "GRACEFUL_STOP" in run_error("users-held.js", {"GRACEFUL_STOP": "soon"})
