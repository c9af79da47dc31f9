"""The rules each kind of value obeys before thinnka passes it on.

Hub ids, pod paths, image references, webhook URLs, one-line text and chat
templates: every option, ``--set`` value and setting of one of these kinds is
checked here, so a value either is refused with ``ConfigError`` naming its
flag or reaches the pod as exactly what the user typed. Patterns are matched
whole (``fullmatch``: ``$`` would admit a trailing newline) and ASCII only
where the receiving system is (the Hub, Docker, a pod's filesystem).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from thinnka.errors import ConfigError

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.parser import Parser

__all__ = [
    "MAX_CHAT_TEMPLATE_CHARS",
    "MAX_LINE_CHARS",
    "check_chat_template",
    "check_hub_id",
    "check_image",
    "check_line",
    "check_number",
    "check_pod_path",
    "check_requirement",
    "check_web_url",
    "is_one_printable_line",
    "url_without_userinfo",
]

MAX_LINE_CHARS = 4096
MAX_CHAT_TEMPLATE_CHARS = 64 * 1024

# One part of a Hub id, as the Hub accepts it: ASCII letters, digits, '_', '.', '-', starting
# and ending with a letter, digit or '_', at most 96 characters (huggingface_hub's
# validate_repo_id, minus the Unicode that Python's \w admits and the Hub refuses).
_HUB_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"(?:{_HUB_PART}/)?{_HUB_PART}")
# Docker's reference grammar (distribution/reference): [registry[:port]/]path[:tag][@digest].
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_IMAGE_REGISTRY = rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?"
_IMAGE = re.compile(
    rf"(?:{_IMAGE_REGISTRY}/)?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)
# Paths on the pod: letters, digits, '.', '_', '-' and '/' separators; no '..' component.
_POD_PATH = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*")
# Where an absolute --output-dir may point: the pod's volume (or scratch space), never /etc.
POD_WRITABLE_ROOTS = ("/workspace/", "/tmp/")
# A URL's ``user:password@`` anywhere in a text: its scheme, then anything up to an '@'
# before the host ends (no '/', '?', '#' or space on the way).
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@")
MAX_REQUIREMENT_CHARS = 512


def is_one_printable_line(value: str) -> bool:
    """No control characters (newline, NUL, escape, ...), no line or paragraph separators."""
    return value.isprintable()


def check_line(flag: str, value: str, *, limit: int = MAX_LINE_CHARS) -> None:
    """Free text that must stay one printable line (it lands in YAML, JSON and logs)."""
    if not is_one_printable_line(value):
        raise ConfigError(f"{flag} must be one line of printable characters, got {value!r}.")
    if len(value) > limit:
        raise ConfigError(f"{flag} is {len(value)} characters long; at most {limit} are allowed.")


def check_hub_id(flag: str, value: str, *, what: str = "Hub repo id") -> None:
    """``name`` or ``namespace/name`` as the Hub accepts it (ASCII, whole match)."""
    if not _HUB_ID.fullmatch(value) or ".." in value or "--" in value or value.endswith(".git"):
        raise ConfigError(
            f"{flag} {value!r} is not a valid {what} (expected ORG/NAME of ASCII letters, "
            "digits, '_', '.' and '-')."
        )


def check_image(flag: str, value: str) -> None:
    if len(value) > 255 or not _IMAGE.fullmatch(value):
        raise ConfigError(
            f"{flag} {value!r} is not a container image reference "
            "(e.g. runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404)."
        )


def check_pod_path(flag: str, value: str, *, absolute_ok: bool) -> None:
    """A path the pod writes: relative (inside the run's folder) or, where the option allows
    it, absolute under the pod's volume; never '..', never a system folder."""
    relative = value.removeprefix("/") if absolute_ok else value
    parts = relative.rstrip("/").split("/")
    if (
        len(value) > 255
        or not _POD_PATH.fullmatch(relative.rstrip("/"))
        or any(part in (".", "..") for part in parts)
    ):
        raise ConfigError(
            f"{flag} {value!r} is not a usable pod path: letters, digits, '.', '_', '-' and "
            "'/' only, no '..' component."
        )
    if value.startswith("/") and not value.startswith(POD_WRITABLE_ROOTS):
        raise ConfigError(
            f"{flag} {value!r}: an absolute path must lie under "
            f"{' or '.join(POD_WRITABLE_ROOTS)} (the pod's volume or scratch space)."
        )


def check_web_url(flag: str, value: str) -> None:
    """A webhook or service URL: http(s) with a host, one printable line, no user info."""
    if not is_one_printable_line(value) or " " in value or len(value) > 2048:
        raise ConfigError(f"{flag} must be an http(s) URL on one line.")
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok, parts = False, urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError(f"{flag} must be an http:// or https:// URL with a host.")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"{flag} must not carry a user name or password ({url_without_userinfo(value)})."
        )


def url_without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def check_requirement(flag: str, item: str) -> None:
    """A pip requirement (PEP 508) a pod can install, shown in messages without userinfo.

    A direct URL (``pkg @ URL``) is fetched by the pod over http(s) (``git+https://`` and
    the like included). It must not carry ``user:password@`` (or a token as the user):
    the requirement is stored with the run, shown by ``show``, put on the pod's pip
    command line and written into the model card. A ``file://`` URL or a local path
    names this machine's disk, which no pod has.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    shown = _URL_USERINFO.sub(r"\1***@", item)
    if _URL_USERINFO.search(item):  # before any other rule: every message shows ``shown``
        raise ConfigError(
            f"{flag}: {shown!r} must not carry a user name or password in its URL (it would "
            "be stored, shown and put on the pod's command line); use a public URL."
        )
    if not is_one_printable_line(item):
        raise ConfigError(f"{flag} items must be one line of printable characters, got {shown!r}.")
    if len(item) > MAX_REQUIREMENT_CHARS:
        raise ConfigError(
            f"{flag}: an item is {len(item)} characters long; at most "
            f"{MAX_REQUIREMENT_CHARS} are allowed."
        )
    try:
        url = Requirement(item).url
    except InvalidRequirement as exc:
        why = str(exc).splitlines()[0] if str(exc) else "unparsable"
        raise ConfigError(
            f"{flag}: {shown!r} is not a valid requirement specifier ({why})."
        ) from None
    if url is None:
        return
    vcs, plus, rest = url.partition("+")
    try:
        parts = urlsplit(rest if plus and vcs in ("git", "hg", "svn", "bzr") else url)
    except ValueError:
        raise ConfigError(f"{flag}: {shown!r} has an unparsable URL.") from None
    if parts.scheme in ("", "file"):
        raise ConfigError(
            f"{flag}: {shown!r} names a path on this machine, which no pod has; publish the "
            "package (PyPI, or a Git repository over https) first."
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{flag}: {shown!r}: the pod fetches requirements over http(s) only, with a host."
        )


def check_number(
    flag: str, value: float, *, low: float, high: float, low_open: bool = False
) -> None:
    """Finite and within [low, high] (``low_open``: low itself excluded)."""
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        raise ConfigError(f"{flag} must be a number {bound} and at most {high:g}, got {value}.")


def check_chat_template(flag: str, template: str) -> None:
    """Size-capped and parsed by Jinja2's own parser, with the tags transformers adds."""
    if len(template) > MAX_CHAT_TEMPLATE_CHARS:
        raise ConfigError(
            f"{flag} is {len(template)} characters; at most {MAX_CHAT_TEMPLATE_CHARS} are allowed."
        )
    if "\x00" in template:
        raise ConfigError(f"{flag} contains a NUL character.")
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        extensions=["jinja2.ext.loopcontrols", _generation_extension()]
    )
    try:
        env.parse(template)
    except TemplateSyntaxError as exc:
        raise ConfigError(
            f"{flag} is not a valid Jinja template: {exc.message} (line {exc.lineno})."
        ) from None


def _generation_extension() -> type:
    """transformers' ``{% generation %}...{% endgeneration %}`` block (AssistantTracker)."""
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}  # noqa: RUF012 - Jinja2 declares it a plain set attribute

        def parse(self, parser: Parser) -> nodes.Node:
            from jinja2 import nodes

            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return Generation
