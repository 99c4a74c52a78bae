"""The container image, without a container engine.

No Docker daemon runs here, so the Dockerfile is checked in two ways:

* a parse-level lint: known instructions, base images pinned by a tag (never ``latest``), no
  ``ADD`` of URLs, a numeric non-root ``USER`` before ``ENTRYPOINT``/``CMD``, ``HEALTHCHECK`` on
  ``/-/healthy`` without curl, ``EXPOSE 9793``, the OCI labels, and a ``.dockerignore`` that
  keeps the build context to what the build needs;
* the same steps on this machine: the build context is assembled through ``.dockerignore``, the
  builder's ``COPY`` instructions are replayed, its ``RUN`` line is executed with ``/opt/certscope``
  and ``/wheels`` pointing into a temporary directory (a fresh virtual environment made by the
  same Python 3.11 the project uses; dependencies come from the package index, which takes about
  20 s with pip's cache), then ``ENTRYPOINT`` + ``CMD`` run with the runtime stage's ``ENV`` and the
  ``HEALTHCHECK`` command must pass. The run must not write anywhere but ``HOME``: the virtual
  environment and the working directory are compared before and after, which is what a read-only
  root file system demands (the tests run as root here, so permissions alone would not show it).

Speed: reusing the project's ``.venv`` through ``--system-site-packages`` is not possible (that
flag exposes the base interpreter's site-packages, not a venv's) and would not test the
dependency list of the wheel; a real install with pip's HTTP cache is the honest and still quick
choice. ``PIP_NO_CACHE_DIR`` of the builder stage is dropped for that reason only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PORT = 9793
UID = 65532

KNOWN = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str

    def json_form(self) -> list[str] | None:
        """The exec (JSON array) form of CMD/ENTRYPOINT/RUN, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[list[Instruction], list[Stage]]:
    """Dockerfile → instructions (continuations joined, comments dropped) and build stages."""
    instructions: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction are skipped by Docker
        if not buf:
            start = number
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(part.strip() for part in buf)
        buf = []
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
    assert not buf, "the Dockerfile ends inside a continued line"

    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {ins.line}: FROM {ins.args}"
            stages.append(Stage(words[0], name, []))
        elif stages:
            stages[-1].instructions.append(ins)
    return instructions, stages


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARGs declared before the first FROM, with their defaults."""
    out: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            out[name.strip()] = default.strip().strip('"')
    return out


def substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m.group(1) or m.group(2)], text)


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage.all("ENV"):
        for word in shlex.split(ins.args):
            key, sep, value = word.partition("=")
            assert sep, f"line {ins.line}: use ENV KEY=VALUE"
            env[key] = value
    return env


def labels_of(stage: Stage) -> dict[str, str]:
    labels: dict[str, str] = {}
    for ins in stage.all("LABEL"):
        for word in shlex.split(ins.args):
            key, _, value = word.partition("=")
            labels[key] = value
    return labels


@pytest.fixture(scope="module")
def dockerfile() -> tuple[list[Instruction], list[Stage]]:
    return parse(DOCKERFILE.read_text())


# --- lint ----------------------------------------------------------------------------------------


def test_every_instruction_is_known(dockerfile: tuple[list[Instruction], list[Stage]]) -> None:
    instructions, stages = dockerfile
    assert instructions[0].keyword in ("ARG", "FROM")
    assert [i for i in instructions if i.keyword not in KNOWN] == []
    assert len(stages) == 2, "a builder stage and a runtime stage"


def test_base_images_are_pinned_by_tag(dockerfile: tuple[list[Instruction], list[Stage]]) -> None:
    instructions, stages = dockerfile
    variables = global_args(instructions)
    names = {s.name for s in stages if s.name}
    for stage in stages:
        image = substitute(stage.image, variables)
        if image in names:
            continue
        ref, _, digest = image.partition("@")
        repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "")
        assert tag or digest, f"{image}: pin a tag"
        assert tag != "latest" and "latest" not in image
        assert repo.split("/")[-1] == "python" and tag.startswith("3.11"), image
    # Both stages use the same interpreter: the copied venv refers to /usr/local/bin/python3.11.
    assert len({substitute(s.image, variables) for s in stages}) == 1


def test_no_add_from_urls(dockerfile: tuple[list[Instruction], list[Stage]]) -> None:
    instructions, _ = dockerfile
    for ins in instructions:
        if ins.keyword == "ADD":
            assert not re.search(r"\b(https?|git)://|git@", ins.args), f"line {ins.line}"
    assert [i.line for i in instructions if i.keyword == "ADD"] == []  # COPY is enough


def test_runtime_runs_as_numeric_non_root_user(
    dockerfile: tuple[list[Instruction], list[Stage]],
) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    users = runtime.all("USER")
    assert users, "the runtime stage must set USER"
    user, _, group = users[-1].args.partition(":")
    assert user == str(UID) and group in ("", str(UID))
    first_start = min(i.line for i in runtime.instructions if i.keyword in ("CMD", "ENTRYPOINT"))
    assert users[-1].line < first_start
    after = [i for i in runtime.instructions if i.line > users[-1].line]
    assert not any(i.keyword == "RUN" for i in after), "nothing runs as root after USER"


def test_entrypoint_cmd_expose_and_healthcheck(
    dockerfile: tuple[list[Instruction], list[Stage]],
) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    assert entrypoint.json_form() == ["certscope"]
    assert cmd.json_form() == ["serve"]
    assert [i.args.split() for i in runtime.all("EXPOSE")] == [[str(PORT)]]
    (health,) = runtime.all("HEALTHCHECK")
    options, _, command = health.args.partition("CMD")
    assert re.search(r"--timeout=\d+s", options) and re.search(r"--interval=\d+s", options)
    argv = json.loads(command.strip())
    assert argv[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{PORT}/-/healthy" in argv[2]
    assert not re.search(r"\b(curl|wget)\b", health.args)


def test_runtime_environment_suits_a_read_only_root(
    dockerfile: tuple[list[Instruction], list[Stage]],
) -> None:
    _, stages = dockerfile
    env = env_of(stages[-1])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"
    assert env["PATH"].startswith("/opt/certscope/bin:")
    # Large scrape buffers go back to the OS (docs/benchmarks.md, fleet memory).
    assert env["MALLOC_MMAP_THRESHOLD_"] == "1048576"
    (workdir,) = stages[-1].all("WORKDIR")
    assert workdir.args == "/tmp"
    # Byte code is compiled at build time, since the running container cannot write it.
    assert "compileall" in " ".join(i.args for i in stages[0].all("RUN"))
    copies = stages[-1].all("COPY")
    assert [c.args for c in copies] == ["--from=builder /opt/certscope /opt/certscope"]
    assert stages[0].name == "builder"


def test_oci_labels(dockerfile: tuple[list[Instruction], list[Stage]]) -> None:
    _, stages = dockerfile
    labels = labels_of(stages[-1])
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert all(k.startswith("org.opencontainers.image.") for k in labels)


# --- .dockerignore -------------------------------------------------------------------------------


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore → (is exception, regex) in order; the last matching pattern wins."""
    out = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rx = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                rx += ".*"
                i += 2
            elif pattern[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pattern[i])
                i += 1
        out.append((negate, re.compile(rx)))
    return out


def ignored(rel: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: a path is excluded when it or a parent directory matches, last match wins."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, rx in patterns:
        if any(rx.fullmatch(p) for p in prefixes):
            result = not negate
    return result


def build_context() -> Iterator[str]:
    patterns = _ignore_patterns()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in (".git", ".venv") or rel_dir != "."  # huge and certainly excluded
        ]
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not ignored(rel, patterns):
                yield rel


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    patterns = _ignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", "tests/test_app.py", "helm/certscope/Chart.yaml"):
        assert ignored(path, patterns), path
    for path in (
        "exporter/certscope/__pycache__/cli.cpython-311.pyc",
        "exporter/certscope.egg-info/PKG-INFO",
    ):
        assert ignored(path, patterns), path
    context = sorted(build_context())
    assert "pyproject.toml" in context and "README.md" in context
    assert "exporter/certscope/cli.py" in context
    assert all(p in ("pyproject.toml", "README.md") or p.startswith("exporter/") for p in context)
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in context)


# --- the same steps, here ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root in roots:
        for dirpath, _, filenames in os.walk(root):
            out[dirpath] = (0, 0)
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                out[path] = (st.st_size, st.st_mtime_ns)
    return out


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.fixture(scope="module")
def built(
    dockerfile: tuple[list[Instruction], list[Stage]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Replay the builder stage: context → COPY → RUN, with /opt/certscope and /wheels local."""
    _, stages = dockerfile
    builder = stages[0]
    base = tmp_path_factory.mktemp("image")
    context = base / "context"
    for rel in build_context():
        dest = context / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    (workdir_ins,) = builder.all("WORKDIR")
    src = base / workdir_ins.args.lstrip("/")
    src.mkdir(parents=True)
    for ins in builder.all("COPY"):
        words = ins.args.split()
        assert not any(w.startswith("--") for w in words)
        *sources, copy_to = words
        target = src / copy_to
        for s in sources:
            origin = context / s
            assert origin.exists(), f"COPY {s}: not in the build context (.dockerignore?)"
            if origin.is_dir():
                shutil.copytree(origin, target if len(sources) == 1 else target / s)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)

    prefix = base / "opt" / "certscope"
    wheels = base / "wheels"
    shim = base / "bin"
    shim.mkdir()
    # `python` in the RUN line is the base image's interpreter: here the project's Python 3.11.
    base_python = Path(getattr(sys, "_base_executable", sys.executable))
    (shim / "python").symlink_to(base_python)
    # The machine's pip settings (index, certificates) stay; nothing of the project's venv does.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE")
    }
    env.update(env_of(builder))
    env.pop("PIP_NO_CACHE_DIR", None)  # see the module docstring
    env["PATH"] = f"{shim}:{env.get('PATH', '/usr/bin:/bin')}"
    (run,) = builder.all("RUN")
    script = run.args.replace("/opt/certscope", str(prefix)).replace("/wheels", str(wheels))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"certscope \d+\.\d+", result.stdout)
    (wheel,) = wheels.glob("certscope-*.whl")
    return {"prefix": prefix, "base": base, "wheel": wheel}


@pytest.mark.timeout(300)
def test_built_environment_serves_healthy_without_writing(
    dockerfile: tuple[list[Instruction], list[Stage]], built: dict[str, Path]
) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    prefix = built["prefix"]
    assert not (prefix / "bin" / "pip").exists()  # removed in the image
    home = built["base"] / "home-tmp"  # what /tmp is in the container: the only writable path
    home.mkdir()
    cwd = built["base"] / "readonly-cwd"
    cwd.mkdir()

    image_env = env_of(runtime)
    env = {"LANG": "C.UTF-8"}
    for key, value in image_env.items():
        value = value.replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
        env[key] = value.replace("/opt/certscope", str(prefix)).replace("/tmp", str(home))
    assert env["HOME"] == str(home)

    (entrypoint,) = runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    argv = [*(entrypoint.json_form() or []), *(cmd.json_form() or [])]
    argv[0] = str(prefix / "bin" / argv[0])
    port = _free_port()
    before = _snapshot(prefix, cwd)
    proc = subprocess.Popen(
        [*argv, "--web.listen-address", f"127.0.0.1:{port}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/-/healthy")
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, proc.stdout.read() if proc.poll() is not None and proc.stdout else ""

        # The image's HEALTHCHECK command, as Docker would run it inside the container.
        (health,) = runtime.all("HEALTHCHECK")
        check = json.loads(health.args.partition("CMD")[2].strip())
        check[0] = str(prefix / "bin" / check[0])
        check[2] = check[2].replace(f"127.0.0.1:{PORT}", f"127.0.0.1:{port}")
        assert subprocess.run(check, env=env, cwd=cwd, timeout=30).returncode == 0

        code, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200 and "certscope_build_info" in metrics
        deadline = time.monotonic() + 30
        while _get(f"http://127.0.0.1:{port}/-/ready")[0] != 200:
            assert time.monotonic() < deadline, "not ready within 30 s"
            time.sleep(0.3)
    finally:
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert "starting certscope" in output
    assert _snapshot(prefix, cwd) == before, "the exporter wrote outside HOME (/tmp)"

    # The healthcheck command fails when nothing answers.
    dead = subprocess.run(check, env=env, cwd=cwd, timeout=30, capture_output=True)
    assert dead.returncode != 0
