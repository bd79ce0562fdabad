"""Deployment (contrib/docker, contrib/helm) and the scripts' uv bootstrap, checked as far as this
machine allows. What needs a Docker daemon or helm skips, naming what is missing; the rest runs here:
the image's install step from a copy of its build context, its entrypoint and health checks, the
compose topology with local PostgreSQL, Redis and nginx, and the chart's templates against values.yaml.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "contrib" / "docker"
CHART = ROOT / "contrib" / "helm" / "gateway"
MASTER_KEY = "sk-deploy-" + uuid.uuid4().hex
HI: Any = [{"role": "user", "content": "hi"}]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in (DOCKER / "Dockerfile").read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    pairs = [line.split(None, 1) for line in text.splitlines() if line.strip()]
    return [(name.upper(), args.strip()) for name, args in pairs]


def _url_path(command: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:[^/'\"]*(/[\w/.-]+)", command)
    assert match, f"no http://127.0.0.1:<port>/<path> in {command!r}"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- the Dockerfile and compose.yaml, as files -----------------------------------------------------

def test_dockerfile_builds_from_the_lock_in_two_stages_and_runs_as_a_user() -> None:
    steps = _dockerfile()
    froms = [args for name, args in steps if name == "FROM"]
    assert len(froms) >= 2 and " AS build" in froms[0], froms
    base = next(args for name, args in steps if name == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert "slim" in base, base
    install = next(args for name, args in steps if name == "RUN" and "install.sh" in args)
    assert "PLUGINS" in install, install
    sync = [line for line in (DOCKER / "install.sh").read_text().splitlines() if re.search(r"\buv sync\b", line)
            and not line.lstrip().startswith("#")]
    assert sync and all("--locked" in line and "--no-dev" in line for line in sync), sync
    final = steps[max(i for i, (name, _) in enumerate(steps) if name == "FROM"):]
    users = [args for name, args in final if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert f"--uid {users[-1].split(':')[0]}" in " ".join(args for name, args in final if name == "RUN")
    assert [args for name, args in final if name == "ENTRYPOINT"] == ['["gateway-entrypoint"]']
    health = [args for name, args in final if name == "HEALTHCHECK"]
    assert len(health) == 1 and _url_path(health[0]) == "/health/liveliness", health


def test_compose_file_names_its_services_dependencies_and_health_checks() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "gateway-1", "gateway-2", "lb"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["lb"]["image"].split(":")[0] in ("nginx", "haproxy")
    for name in ("postgres", "redis", "gateway-1", "gateway-2", "lb"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("gateway-1", "gateway-2"):
        gateway = services[name]
        assert gateway["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert gateway["depends_on"]["redis"] == {"condition": "service_healthy"}
        assert "@postgres:5432/" in gateway["environment"]["DATABASE_URL"]
        assert gateway["environment"]["REDIS_URL"].startswith("redis://redis:6379")
        assert gateway["environment"]["DISABLE_SCHEMA_UPDATE"] == "true"
        assert gateway["build"]["dockerfile"] == "contrib/docker/Dockerfile"
        assert "./config.yaml:/etc/gateway/config.yaml:ro" in gateway["volumes"]
        assert _url_path(" ".join(gateway["healthcheck"]["test"])) == "/health/readiness"
    assert services["lb"]["depends_on"] == {f"gateway-{i}": {"condition": "service_healthy"} for i in (1, 2)}
    assert len(services["lb"]["ports"]) == 1
    upstreams = re.findall(r"^\s*server\s+([^\s{]+);?\s", (DOCKER / "nginx.conf").read_text(), re.M)
    assert upstreams == ["gateway-1:4000", "gateway-2:4000"]
    config = yaml.safe_load((DOCKER / "config.yaml").read_text())
    assert "master_key" not in (config.get("general_settings") or {}), "secrets come from the environment"


def test_every_health_check_targets_a_served_public_route(gateway_server: Any) -> None:
    """The image's HEALTHCHECK, compose's checks and the chart's probes, asked without a key."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = {_url_path(args) for name, args in _dockerfile() if name == "HEALTHCHECK"}
    services = _compose()["services"]
    paths |= {_url_path(" ".join(services[name]["healthcheck"]["test"])) for name in ("gateway-1", "gateway-2")}
    paths |= {values[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe", "startupProbe")}
    gw = gateway_server({"model_list": [{"model_name": "fake-gpt", "litellm_params": {"model": "fake/fake-gpt"}}]})
    for path in sorted(paths):
        reply = httpx.get(gw.url + path, timeout=10)
        assert reply.status_code == 200, (path, reply.status_code, reply.text[:200])


# -- the image's environment, built here as its build stage does --------------------------------------

def _dockerignore_patterns() -> list[tuple[bool, str, re.Pattern[str]]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, line = line.startswith("!"), line.lstrip("!").strip("/")
        regex = re.sub(r"\\\*\\\*/", "(?:.*/)?", re.escape(line)).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        patterns.append((negate, line, re.compile(regex.replace(r"\?", "[^/]") + r"\Z")))
    return patterns


def _ignored(rel: str, patterns: list[tuple[bool, str, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for negate, _, regex in patterns:
        if any(regex.match(c) for c in candidates):
            ignored = not negate
    return ignored


def _copy_build_context(target: Path) -> None:
    patterns = _dockerignore_patterns()
    negated = [raw for negate, raw, _ in patterns if negate]
    for directory, dirs, files in os.walk(ROOT):
        rel_dir = os.path.relpath(directory, ROOT)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Skip an ignored directory unless an exception may re-include something below it.
        dirs[:] = [d for d in dirs if not _ignored(rel_dir + d, patterns)
                   or any(raw.startswith(rel_dir + d + "/") for raw in negated)]
        for name in files:
            if not _ignored(rel_dir + name, patterns) and not os.path.islink(os.path.join(directory, name)):
                (target / rel_dir).mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.join(directory, name), target / rel_dir / name)


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """contrib/docker/install.sh over a copy of the build context (.dockerignore applied), with the
    PLUGINS compose.yaml builds; the copy is then removed, as the run stage has no source tree."""
    base = tmp_path_factory.mktemp("image")
    context, venv = base / "context", base / "opt-gateway"
    context.mkdir()
    _copy_build_context(context)
    plugins = _compose()["x-gateway"]["build"]["args"]["PLUGINS"]
    done = subprocess.run(["sh", "contrib/docker/install.sh"], cwd=context, capture_output=True, text=True, timeout=600,
                          env=_env(PLUGINS=plugins, UV_PROJECT_ENVIRONMENT=str(venv), UV_PYTHON=sys.executable))
    assert done.returncode == 0, done.stdout + done.stderr
    shutil.rmtree(context)
    return venv


def test_image_environment_holds_the_core_and_the_chosen_plugins_only(image_venv: Path) -> None:
    command = ["sh", str(DOCKER / "entrypoint.sh"), "plugins", "--json", "--config", str(DOCKER / "config.yaml")]
    listing = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=image_venv,
                             env=_env(PATH=f"{image_venv / 'bin'}{os.pathsep}{os.environ['PATH']}"))
    assert listing.returncode == 0, listing.stderr
    info = json.loads(listing.stdout)
    installed = {row["distribution"] for row in info["installed"]}
    chosen = {f"gateway-plugin-{name}" for name in _compose()["x-gateway"]["build"]["args"]["PLUGINS"].split()}
    assert installed == chosen, installed
    assert {"hide_secrets", "banned_keywords"} <= {row["name"] for row in info["enabled"]}
    code = "import gateway, importlib.util; print(gateway.__file__, importlib.util.find_spec('pytest') is None)"
    probe = subprocess.run([str(image_venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=_env(),
                           cwd=image_venv)
    where, no_pytest = probe.stdout.split()
    assert where.startswith(str(image_venv)) and no_pytest == "True", probe.stdout + probe.stderr


def _redis_url() -> str:
    import redis

    url = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at {url} is not reachable: {exc}"
        if _in_ci() or os.environ.get("GATEWAY_TEST_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _health(command: list[str], env: dict[str, str]) -> bool:
    """A compose/Dockerfile health check command, run here (`python` is the image's)."""
    return subprocess.run(command, env=env, capture_output=True, timeout=10).returncode == 0


@pytest.fixture(scope="module")
def topology(image_venv: Path, tmp_path_factory: pytest.TempPathFactory,
             postgres_databases: Any) -> Iterator[dict[str, Any]]:
    """compose.yaml without Docker: its migrate service, then its two gateways through the image's
    entrypoint, on one database (a fresh PostgreSQL one when configured) and one Redis."""
    work = tmp_path_factory.mktemp("topology")
    database = postgres_databases.create() if postgres_databases else f"sqlite://{work / 'shared.sqlite3'}"
    environment = dict(_compose()["x-gateway"]["environment"])
    assert set(environment) == {"GATEWAY_MASTER_KEY", "DATABASE_URL", "REDIS_URL", "DISABLE_SCHEMA_UPDATE"}
    environment.update(GATEWAY_MASTER_KEY=MASTER_KEY, DATABASE_URL=database, REDIS_URL=_redis_url())
    env = _env(**environment, GATEWAY_CONFIG=str(DOCKER / "config.yaml"),  # the image's ENV and the mount
               PATH=f"{image_venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    entrypoint = ["sh", str(DOCKER / "entrypoint.sh")]
    result: dict[str, Any] = {"database": database, "env": env}
    if postgres_databases:  # an instance never migrates here (DISABLE_SCHEMA_UPDATE), so it refuses
        result["unmigrated"] = subprocess.run(entrypoint, cwd=work, env={**env, "PORT": str(_free_port())},
                                              capture_output=True, text=True, timeout=60)
    result["migrate"] = subprocess.run(entrypoint + ["migrate"], cwd=work, env=env, capture_output=True, text=True,
                                       timeout=120)
    assert result["migrate"].returncode == 0, result["migrate"].stderr
    procs, ports = [], [_free_port(), _free_port()]
    try:
        for i, port in enumerate(ports):
            with open(work / f"gateway-{i + 1}.log", "wb") as log:
                procs.append(subprocess.Popen(entrypoint, cwd=work, env={**env, "PORT": str(port)}, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 90
        for i, (proc, port) in enumerate(zip(procs, ports)):
            while not _answers(f"http://127.0.0.1:{port}/health/readiness"):
                log = (work / f"gateway-{i + 1}.log").read_text()[-3000:]
                assert proc.poll() is None and time.monotonic() < deadline, log
                time.sleep(0.2)
        yield {**result, "ports": ports, "work": work}
    finally:
        for proc in procs:
            _stop(proc)


@pytest.mark.db  # run again on PostgreSQL: there an unmigrated instance must refuse
def test_migrate_runs_once_then_both_instances_serve_through_the_entrypoint(topology: dict[str, Any]) -> None:
    if "unmigrated" in topology:
        assert topology["unmigrated"].returncode == 2, topology["unmigrated"].stderr
        assert "run: gateway migrate" in topology["unmigrated"].stderr
    assert topology["migrate"].stdout.startswith("applied: gateway."), topology["migrate"].stdout
    liveness = json.loads(next(args for name, args in _dockerfile() if name == "HEALTHCHECK").split("CMD", 1)[1])
    readiness = _compose()["x-gateway"]["healthcheck"]["test"][1:]
    for port in topology["ports"]:
        for check in (liveness, readiness):  # the image's HEALTHCHECK, compose's, as Docker runs them
            assert _health(check, {**topology["env"], "PORT": str(port)}), check
        client = openai.OpenAI(api_key=MASTER_KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        with client:
            reply = client.chat.completions.create(model="fake-gpt", messages=HI)
        assert reply.choices[0].message.content
        refused = httpx.get(f"http://127.0.0.1:{port}/key/list", timeout=10)
        assert refused.status_code == 401, "the master key is the one compose sets"


@pytest.mark.db
def test_nginx_config_balances_the_two_instances(topology: dict[str, Any]) -> None:
    if NGINX is None:
        pytest.skip("nginx is not installed: `apt-get install nginx-light` runs compose's load balancer config here")
    work, (first, second) = topology["work"], topology["ports"]
    port = _free_port()
    site = (DOCKER / "nginx.conf").read_text().replace("gateway-1:4000", f"127.0.0.1:{first}") \
        .replace("gateway-2:4000", f"127.0.0.1:{second}").replace("listen 4000;", f"listen 127.0.0.1:{port};")
    (work / "site.conf").write_text(site)
    temp = " ".join(f"{kind}_temp_path {work / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(f"pid {work / 'nginx.pid'}; error_log {work / 'nginx.log'}; daemon off;\n"
                                     f"events {{}}\nhttp {{ access_log off; {temp} include {work / 'site.conf'}; }}\n")
    nginx = subprocess.Popen([NGINX, "-p", str(work), "-c", str(work / "nginx.conf")], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _answers(f"http://127.0.0.1:{port}/nginx-health"):
            assert nginx.poll() is None and time.monotonic() < deadline, (work / "nginx.log").read_text()
            time.sleep(0.1)
        with openai.OpenAI(api_key=MASTER_KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0) as client:
            answered = []
            for _ in range(2):
                raw = client.chat.completions.with_raw_response.create(model="fake-gpt", messages=HI)
                assert raw.parse().choices[0].message.content
                answered.append(raw.headers["x-gateway-upstream"])
        assert sorted(answered) == sorted([f"127.0.0.1:{first}", f"127.0.0.1:{second}"])
    finally:
        _stop(nginx)


# -- Docker itself: only where a daemon runs and Docker Hub answers -----------------------------------

def _docker_unavailable() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed, so the image is not built nor compose run (install Docker Engine)"
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the Docker daemon is not running, so the image is not built nor compose run (`docker info`: {last})"
    if subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60).returncode != 0:
        return "the docker compose plugin is missing (`docker compose version` fails), so compose is not run"
    services = _compose()["services"]
    base = re.search(r"PYTHON_IMAGE=(\S+)", (DOCKER / "Dockerfile").read_text())
    for image in [base.group(1) if base else ""] + [services[name]["image"] for name in ("postgres", "redis", "lb")]:
        pull = subprocess.run([docker, "pull", "-q", image], capture_output=True, text=True, timeout=900)
        if pull.returncode != 0:
            last = (pull.stderr.strip().splitlines() or ["no output"])[-1]
            return (f"cannot pull {image}, so the image is not built nor compose run (is Docker Hub reachable? "
                    f"here only PyPI's, Debian's and npm's registries are): {last}")
    return None


def test_compose_builds_the_image_and_both_instances_answer_through_the_load_balancer() -> None:
    reason = _docker_unavailable()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    env = _env(GATEWAY_MASTER_KEY=MASTER_KEY, GATEWAY_PORT=str(port))
    compose = ["docker", "compose", "-p", f"gateway-test-{uuid.uuid4().hex[:8]}", "-f", str(DOCKER / "compose.yaml")]
    try:
        up = subprocess.run(compose + ["up", "--build", "-d"], env=env, capture_output=True, text=True, timeout=1800)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        deadline = time.monotonic() + 180
        while not _answers(f"http://127.0.0.1:{port}/nginx-health"):
            assert time.monotonic() < deadline, "the load balancer never answered"
            time.sleep(1)
        answered: list[str] = []
        with openai.OpenAI(api_key=MASTER_KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0) as client:
            while len(answered) < 2 or (len(set(answered)) < 2 and len(answered) < 6):
                raw = client.chat.completions.with_raw_response.create(model="fake-gpt", messages=HI)
                assert raw.parse().choices[0].message.content
                answered.append(raw.headers["x-gateway-upstream"])
        assert len(set(answered)) == 2, answered
    finally:
        subprocess.run(compose + ["down", "-v", "--remove-orphans"], env=env, capture_output=True, timeout=300)


# -- the Helm chart -------------------------------------------------------------------------------

FULL_VALUES = ["--set", "secrets.databaseUrl=postgresql://gateway:pw@postgres:5432/gateway",
               "--set", "secrets.redisUrl=redis://redis:6379/0", "--set", "secrets.masterKey=sk-chart",
               "--set", "ingress.enabled=true", "--set", "autoscaling.enabled=true"]
BASE_KINDS = {"ConfigMap", "Secret", "Service", "Deployment"}


def test_helm_lints_and_renders_the_chart() -> None:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("helm is not installed: get the single binary (https://helm.sh/docs/intro/install/) "
                    "to lint and render contrib/helm/gateway")
    for extra, kinds in (([], BASE_KINDS), (FULL_VALUES, BASE_KINDS | {"Job", "HorizontalPodAutoscaler", "Ingress"})):
        lint = subprocess.run([helm, "lint", "--strict", str(CHART), *extra], capture_output=True, text=True,
                              timeout=120)
        assert lint.returncode == 0, lint.stdout + lint.stderr
        rendered = subprocess.run([helm, "template", "demo", str(CHART), *extra], capture_output=True, text=True,
                                  timeout=120)
        assert rendered.returncode == 0, rendered.stderr
        docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
        assert {doc["kind"] for doc in docs} == kinds
        pod = next(doc for doc in docs if doc["kind"] == "Deployment")["spec"]["template"]
        assert re.fullmatch(r"[0-9a-f]{64}", pod["metadata"]["annotations"]["checksum/config"])
        assert pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health/readiness"


def _values_references() -> set[str]:
    refs: set[str] = set()
    for path in (CHART / "templates").iterdir():
        refs |= {ref.lstrip(".") for ref in re.findall(r"\.Values((?:\.[A-Za-z_]\w*)+)", path.read_text())}
    return refs


def test_chart_templates_read_only_keys_of_values_yaml_and_read_them_all() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    refs = _values_references()
    missing = []
    for ref in sorted(refs):
        node: Any = values
        for part in ref.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(ref)
                break
            node = node[part]
    assert not missing, f"templates read keys values.yaml lacks: {missing}"
    unread: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = prefix + key
            if path in refs:
                continue
            if isinstance(value, dict) and any(ref.startswith(path + ".") for ref in refs):
                walk(value, path + ".")
            else:
                unread.append(path)

    walk(values, "")
    assert not unread, f"values.yaml keys no template reads: {unread}"


ACTION = re.compile(r"\{\{.*?\}\}")


def _stubbed(template: str) -> str:
    """The template with each line that is only actions (control flow, blocks rendered by nindent)
    dropped, and every other action replaced by a scalar: what stays is the YAML skeleton."""
    lines = [ACTION.sub("STUB", line) for line in template.splitlines()
             if not (ACTION.search(line) and not ACTION.sub("", line).strip())]
    return "\n".join(lines)


def test_chart_templates_are_kubernetes_objects_once_actions_are_stubbed() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    objects: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted((CHART / "templates").glob("*.yaml")):
        docs = [doc for doc in yaml.safe_load_all(_stubbed(path.read_text())) if doc]
        assert len(docs) == 1 and {"apiVersion", "kind", "metadata"} <= set(docs[0]), path.name
        objects[docs[0]["kind"]] = (path.read_text(), docs[0])
    assert set(objects) == BASE_KINDS | {"Job", "HorizontalPodAutoscaler", "Ingress"}
    raw, deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]
    for name in ("configmap", "secret"):  # a changed config or Secret rolls the pods
        assert f'checksum/{"config" if name == "configmap" else name}: {{{{ include (print $.Template.BasePath ' \
               f'"/{name}.yaml") . | sha256sum }}}}' in raw
    assert {"checksum/config", "checksum/secret"} <= set(pod["metadata"]["annotations"])
    container = pod["spec"]["containers"][0]
    assert {"livenessProbe", "readinessProbe", "startupProbe", "resources", "envFrom"} <= set(container)
    assert "secretRef" in container["envFrom"][0]
    assert {"name": "config", "mountPath": "/etc/gateway", "readOnly": True} in container["volumeMounts"]
    assert any("configMap" in volume for volume in pod["spec"]["volumes"])
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    for kind, switch in (("HorizontalPodAutoscaler", "autoscaling"), ("Ingress", "ingress")):
        assert objects[kind][0].startswith(f"{{{{- if .Values.{switch}.enabled }}}}"), kind
        assert values[switch]["enabled"] is False, f"{kind} is off by default"


# -- the uv bootstrap of scripts/serve.sh and scripts/test.sh ----------------------------------------

def _bootstrap() -> str:
    blocks = []
    for name in ("serve.sh", "test.sh"):
        text = (ROOT / "scripts" / name).read_text()
        match = re.search(r"^# >>> uv bootstrap.*?^# <<< uv bootstrap$", text, re.M | re.S)
        assert match, f"scripts/{name} has no uv bootstrap block"
        blocks.append(match.group(0))
    assert blocks[0] == blocks[1], "scripts/serve.sh and scripts/test.sh bootstrap uv differently"
    return blocks[0]


def _fresh_machine(tmp_path: Path) -> tuple[dict[str, str], bool]:
    """A PATH with python3 and the few tools the bootstrap uses, and no uv, where pip refuses to
    install outside a venv: Debian's own python3 (its EXTERNALLY-MANAGED marker) when this machine
    has it, else this Python with PIP_REQUIRE_VIRTUALENV. Returns the environment and whether it is
    Debian's python3."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python, extra = Path(getattr(sys, "_base_executable", sys.executable)), {"PIP_REQUIRE_VIRTUALENV": "1"}
    if Path("/usr/bin/python3").exists():
        stdlib = subprocess.run(["/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                                capture_output=True, text=True).stdout.strip()
        if stdlib and (Path(stdlib) / "EXTERNALLY-MANAGED").exists():
            python, extra = Path("/usr/bin/python3"), {}
    (bin_dir / "python3").symlink_to(python)
    for tool in ("mkdir", "ln", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    env = _env(PATH=str(bin_dir), GATEWAY_TOOLS_DIR=str(tmp_path / "tools"), PYTHONUSERBASE=str(tmp_path / "userbase"),
               **extra)
    env.pop("PIP_USER", None)
    refused = subprocess.run(["python3", "-m", "pip", "install", "--dry-run", "--quiet", "uv"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and re.search(r"externally-managed-environment|virtualenv", refused.stderr), \
        refused.stderr
    (tmp_path / "run.sh").write_text(f"set -euo pipefail\n{_bootstrap()}\nuv --version\n")
    return env, not extra


def _run_bootstrap(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shutil.which("bash") or "/bin/bash", str(tmp_path / "run.sh")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_bootstrap_installs_uv_into_a_venv_of_its_own_where_pip_refuses(tmp_path: Path) -> None:
    env, _ = _fresh_machine(tmp_path)
    first = _run_bootstrap(tmp_path, env)
    assert first.returncode == 0 and first.stdout.startswith("uv "), first.stdout + first.stderr
    assert (tmp_path / "tools" / "bin" / "uv").resolve() == (tmp_path / "tools" / "venv" / "bin" / "uv").resolve()
    assert not (tmp_path / "userbase").exists(), "nothing installed outside the venv"
    again = _run_bootstrap(tmp_path, env)
    assert again.returncode == 0 and "installing uv" not in again.stderr, again.stderr


def test_bootstrap_without_the_venv_module_names_the_apt_fix(tmp_path: Path) -> None:
    """Debian without python3-venv has no `ensurepip`: the bootstrap prints the apt command, then
    falls back to `pip install --user --break-system-packages`."""
    env, debian = _fresh_machine(tmp_path)
    fake = tmp_path / "no-venv" / "ensurepip"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named ensurepip (no python3-venv)")\n')
    done = _run_bootstrap(tmp_path, {**env, "PYTHONPATH": str(fake.parent)})
    assert "apt-get install python3-venv" in done.stderr, done.stderr
    if debian:  # Debian's pip takes --break-system-packages
        assert done.returncode == 0 and done.stdout.startswith("uv "), done.stdout + done.stderr
        assert (tmp_path / "tools" / "bin" / "uv").resolve().is_relative_to((tmp_path / "userbase").resolve())
    else:  # PIP_REQUIRE_VIRTUALENV refuses --user too: the script stops, naming the fix again
        assert done.returncode == 1 and "could not install uv" in done.stderr, done.stderr
    assert not (tmp_path / "tools" / "venv").exists()
