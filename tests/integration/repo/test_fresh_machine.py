"""Every command the hack scripts run comes from something a fresh machine gets from us: a Debian
package `hack/deps.sh` installs, an Essential package every Debian has, or a tool the repo builds
into `bin/` (issue 12: the stub image copied `/bin/busybox`, which nothing installed, and a green
run on a machine that happened to have it hid the failure).

The scripts are read as text: the first word of every command (after `|`, `&&`, `;`, `$(`, `if`,
`then`...) that is not a shell builtin, keyword, variable or one of the scripts' own functions is
a command they run. Each is resolved on this machine and its package looked up with `dpkg -S`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.utils.cluster import REPO

pytestmark = pytest.mark.integration

HACK = REPO / "hack"
_BUILTIN_WORDS = (
    "alias bg bind break builtin caller case cd command compgen complete continue declare "
    "dirs disown do done echo elif else enable esac eval exec exit export false fc fg fi for "
    "function getopts hash help history if in jobs kill let local logout mapfile popd printf "
    "pushd pwd read readarray readonly return select set shift shopt source suspend test "
    "then time times trap true type typeset ulimit umask unalias unset until wait while "
    "[ [[ ] ]] { } . :"
)
BUILTINS = frozenset(_BUILTIN_WORDS.split(" "))
# Provided by the machine itself (the brief: Python 3.11 and Go come installed), not by a package.
MACHINE = {"go", "python3", "apt-get"}
# Run only as `... || true` where the platform works without them.
BEST_EFFORT = {"modprobe"}  # cluster.sh: br_netfilter, which the bridge CNI setup does not need
SEPARATORS = re.compile(r"\|\||&&|[|;&`]|\$\(|\(|\)|\b(?:then|do|else|if|while|until|!)\b")
DEFINED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)\s*\{", re.MULTILINE)


HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_]+)['\"]?")
# A path that starts the word: not the tail of a longer path or glob (`/usr/lib/x/*/bin/y`).
LITERAL_PATHS = re.compile(r"(?<![\w$./*-])/(?:usr/)?s?bin/[a-z0-9_.+-]+")


def code_lines(script: str) -> list[str]:
    """The script's lines without here-documents and multi-line array literals (data)."""
    lines: list[str] = []
    end: str | None = None
    in_array = False
    for raw in script.splitlines():
        if end is not None:
            end = None if raw.strip() == end else end
            continue
        if in_array:
            in_array = ")" not in raw
            continue
        lines.append(raw)
        heredoc = HEREDOC.search(raw)
        if heredoc:
            end = heredoc.group(1)
        elif re.search(r"=\([^)]*$", raw):
            in_array = True
    return lines


def commands(script: str) -> set[str]:
    found: set[str] = set()
    for raw in code_lines(script):
        line = re.sub(r"(^|\s)#.*$", "", raw)  # comments
        line = re.sub(r"=\([^)]*\)", "=", line)  # one-line array literals
        # Quoted text is data, or a command named by a variable ("$bin/kubectl"): a placeholder
        # keeps its place, so the word after it is not mistaken for the command.
        line = re.sub(r"'[^']*'|\"[^\"]*\"", " QUOTED ", line)
        if re.match(r"^\s*[A-Za-z0-9_|-]+\)\s", raw):  # a `case` pattern line
            line = line.split(")", 1)[1]
        for segment in SEPARATORS.split(line):
            words = segment.split()
            while words and (
                "=" in words[0] or words[0] in {"sudo", "env", "exec", "nohup", "setsid", "timeout"}
            ):
                words = words[1:]  # assignments and wrappers: the command comes after
                if words and re.fullmatch(r"[0-9.]+[smh]?", words[0]):
                    words = words[1:]  # timeout's duration
            if words and re.fullmatch(r"[a-z][a-z0-9_.+-]*", words[0]):
                found.add(words[0])
    return found


def deps_packages() -> set[str]:
    text = (HACK / "deps.sh").read_text()
    listed = re.search(r"packages=\(([^)]*)\)", text, re.DOTALL)
    assert listed, "hack/deps.sh has no packages=(...) list"
    return set(listed.group(1).split())


def package_of(path: str) -> tuple[str, bool]:
    """(package, essential) for an installed file, via dpkg."""
    resolved = str(Path(path).resolve())
    # dpkg records /bin and /sbin paths that usrmerge moved under /usr, or the other way round.
    variants = {p for f in (path, resolved) for p in (f, f.removeprefix("/usr"), "/usr" + f)}
    for candidate in sorted(variants):
        done = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if done.returncode == 0:
            package = done.stdout.split(":", 1)[0].split(",")[0].strip()
            status = subprocess.run(
                ["dpkg-query", "-W", "-f=${Essential}", package], capture_output=True, text=True
            ).stdout.strip()
            return package, status == "yes"
    raise AssertionError(f"{path} belongs to no Debian package")


def test_every_command_the_hack_scripts_run_is_provided() -> None:
    scripts = sorted(HACK.glob("*.sh"))
    assert len(scripts) >= 5
    functions = {name for s in scripts for name in DEFINED.findall(s.read_text())}
    built = {p.name for p in (REPO / "bin").iterdir()} if (REPO / "bin").exists() else set()
    wanted = deps_packages()
    problems: list[str] = []
    seen: set[str] = set()
    for script in scripts:
        for command in commands(script.read_text()) - BUILTINS - functions - MACHINE - BEST_EFFORT:
            seen.add(command)
            if command in built or (HACK / command).exists():
                continue
            path = shutil.which(command)
            if path is None:
                problems.append(f"{script.name}: {command} is not installed here at all")
                continue
            package, essential = package_of(path)
            if not essential and package not in wanted:
                problems.append(f"{script.name}: {command} comes from {package}, not in deps.sh")
    for script in scripts:
        for path in set(LITERAL_PATHS.findall(script.read_text())):
            seen.add(Path(path).name)
            if not Path(path).exists():
                problems.append(f"{script.name}: {path} does not exist here")
                continue
            package, essential = package_of(path)
            if not essential and package not in wanted:
                problems.append(f"{script.name}: {path} comes from {package}, not in deps.sh")
    # The parser must really see the scripts' commands, or this test proves nothing.
    assert {"buildah", "ctr", "debootstrap", "openssl", "curl", "busybox"} <= seen
    assert not problems, "\n".join(sorted(problems))
