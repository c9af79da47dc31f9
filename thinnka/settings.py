"""Settings from the environment and ``.env``.

As in the original tool, a ``.env`` found from the working directory upward
(or given with ``--env-file``) overrides the process environment. Secrets are
wrapped in ``Secret`` so that no repr, log line or traceback shows them.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from thinnka.errors import ConfigError
from thinnka.values import check_web_url

__all__ = ["SETTINGS_DOC", "Secret", "Settings", "load_settings"]

DEFAULT_RUNPOD_API_BASE_URL = "https://api.runpod.io"
RUNPOD_APIS = ("rest", "graphql")  # REST v2 first: GraphQL retires in early 2027

# (variable, what it is for) — the README's configuration table and example.env
# are checked against this list by a test.
SETTINGS_DOC: tuple[tuple[str, str], ...] = (
    ("RUNPOD_API_KEY", "Runpod API key (required for run; plan and gpus work without it)"),
    ("RUNPOD_API_BASE_URL", "Runpod API base URL; REST v2 at {base}/v2, GraphQL at {base}/graphql"),
    ("THINNKA_RUNPOD_API", "Runpod transport: rest (REST v2, the default) or graphql"),
    ("HF_TOKEN", "Hugging Face token with write access to the target namespace"),
    ("HUGGINGFACE_HUB_TOKEN", "Fallback name for HF_TOKEN"),
    ("HF_ENDPOINT", "Hugging Face Hub endpoint (huggingface_hub's own variable)"),
    ("SSH_PUBLIC_KEY", "Public key installed on the pod (else ~/.ssh/id_ed25519.pub)"),
    ("RUNPOD_SSH_PUBLIC_KEY", "Fallback name for SSH_PUBLIC_KEY"),
    ("SSH_PRIVATE_KEY_PATH", "Private key used to reach the pod (else ~/.ssh/id_ed25519)"),
    ("PROGRESS_WEBHOOK_URL", "Generic JSON webhook that receives progress events"),
    ("DISCORD_WEBHOOK_URL", "Discord webhook that receives progress events"),
    ("WANDB_API_KEY", "Weights & Biases key, forwarded to the trainer for --report-to wandb"),
    ("THINNKA_STATE_DIR", "Runtime folder for thinnka.db and runs/<run-id>/ (default ./state)"),
    ("THINNKA_DB_URL", "PostgreSQL URL (postgresql+psycopg://...) instead of the SQLite file"),
)


class Secret:
    """A string that never shows itself in repr/str; ask with ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything thinnka reads from the environment, resolved once per command."""

    state_dir: Path
    db_url: str | None = None
    runpod_api_key: Secret | None = None
    runpod_api_base_url: str = DEFAULT_RUNPOD_API_BASE_URL
    runpod_api: str = "rest"
    hf_token: Secret | None = None
    hf_endpoint: str | None = None
    ssh_public_key: str | None = None
    ssh_private_key_path: str | None = None
    progress_webhook_url: str | None = None
    discord_webhook_url: str | None = None
    wandb_api_key: Secret | None = None
    env_file: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Lines of the .env file that are not KEY=VALUE: ignored, warned about, shown by doctor.
    env_warnings: tuple[str, ...] = ()
    # Settings that cannot be used as given (a malformed token, a URL with a password):
    # every command but doctor refuses to start; none of them shows a secret value.
    problems: tuple[str, ...] = ()

    def require_usable(self) -> None:
        """Raise ``ConfigError`` for the first unusable setting."""
        if self.problems:
            raise ConfigError(self.problems[0])

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.state_dir / 'thinnka.db'}"

    def remote_log(self, run_id: str) -> Path:
        """The local copy of a run's remote output (what ``thinnka logs`` prints)."""
        return self.state_dir / "runs" / run_id / "remote.log"

    @property
    def graphql_url(self) -> str:
        return self.runpod_api_base_url.rstrip("/") + "/graphql"

    def secrets(self) -> list[str]:
        """Every secret value, for scrubbing output that came from elsewhere.

        Webhook URLs are secrets as a whole and by their path (a Discord webhook's token is
        its last segment); a URL's ``user:password`` is one too.
        """
        found = [s.reveal() for s in (self.runpod_api_key, self.hf_token, self.wandb_api_key) if s]
        for url in (self.progress_webhook_url, self.discord_webhook_url):
            if url and "://" in url and len(url) >= 12:  # not a bare "http://" to scrub
                found += [url, *_url_secrets(url, with_path=True)]
        for url in (self.runpod_api_base_url, self.hf_endpoint):
            if url:
                found += _url_secrets(url, with_path=False)
        # Longest first, so a URL is replaced whole before a part of it is.
        return sorted({value for value in found if len(value) >= 4}, key=len, reverse=True)


def _url_secrets(url: str, *, with_path: bool) -> list[str]:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = [parts.netloc.rpartition("@")[0]] if "@" in parts.netloc else []
    found += [password] if password else []
    if with_path:
        found += [parts.path, *parts.path.split("/"), parts.query]
    return [value for value in found if len(value) >= 8]


_TOKEN_VARIABLES = ("RUNPOD_API_KEY", "HF_TOKEN", "HUGGINGFACE_HUB_TOKEN", "WANDB_API_KEY")
_URL_VARIABLES = ("RUNPOD_API_BASE_URL", "HF_ENDPOINT", "PROGRESS_WEBHOOK_URL",
                  "DISCORD_WEBHOOK_URL")  # fmt: skip


def _setting_problems(get: Callable[[str], str | None]) -> tuple[str, ...]:
    """What makes a setting unusable, named by variable; never a value of a secret."""
    problems: list[str] = []
    for name in _TOKEN_VARIABLES:
        value = get(name)
        if value is not None and not (value.isascii() and value.isprintable() and " " not in value):
            problems.append(
                f"{name} is malformed: a token is one line of printable ASCII without spaces "
                "(the value is not shown). Check its quoting in .env."
            )
    for name in _URL_VARIABLES:
        value = get(name)
        if value is None:
            continue
        try:
            check_web_url(name, value)
        except ConfigError as exc:
            problems.append(exc.message)
    return tuple(problems)


def _env_file_warnings(path: Path, text: str) -> tuple[str, ...]:
    """Lines python-dotenv cannot parse (it skips them); their text may hold a secret."""
    import io

    from dotenv.parser import parse_stream

    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    return tuple(f"{path}: line {line} is not KEY=VALUE and was ignored." for line in bad)


# Byte-order marks of the encodings an editor saves a .env in (Notepad's "Unicode" is
# UTF-16 LE with a BOM); UTF-32's marks come first, as UTF-16's are their prefixes.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)  # fmt: skip


def _read_env_file(path: Path) -> str:
    """The .env's text: UTF-8, or what its byte-order mark says. Anything else is refused
    naming the file and line, never its text (a line may hold a secret)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(f"{path}: cannot be read ({why}).") from None
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        label = encoding.upper().removesuffix("-SIG")
        raise ConfigError(
            f"{path}: line {line} is not {label} text (byte 0x{data[exc.start]:02X}); "
            "save the file as UTF-8."
        ) from None
    if "\0" in text:  # UTF-16 without a byte-order mark decodes as UTF-8 with NULs
        line = text[: text.index("\0")].count("\n") + 1
        raise ConfigError(
            f"{path}: line {line} holds NUL bytes (UTF-16 without a byte-order mark?); "
            "save the file as UTF-8."
        )
    return text


def load_settings(
    env_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Read settings; ``.env`` values win over the process environment.

    ``environ`` and ``cwd`` exist for tests; commands pass nothing.
    """
    from dotenv import dotenv_values

    values = dict(os.environ if environ is None else environ)
    found: Path | None = None
    if env_file is not None:
        found = Path(env_file).expanduser()
        if not found.is_file():
            raise ConfigError(f"--env-file {str(env_file)!r} does not exist.")
    else:
        # python-dotenv's find_dotenv(usecwd=True) walks up from the process
        # cwd; walking ourselves lets tests (and ``cwd``) choose the start.
        start = cwd or Path.cwd()
        found = next((d / ".env" for d in (start, *start.parents) if (d / ".env").is_file()), None)
    warnings: tuple[str, ...] = ()
    if found is not None:
        # python-dotenv logs each unparsable line itself; ours names the line once, properly.
        logging.getLogger("dotenv.main").setLevel(logging.ERROR)
        text = _read_env_file(found)
        for key, value in dotenv_values(stream=io.StringIO(text)).items():
            if value is not None:
                values[key] = value
        warnings = _env_file_warnings(found, text)

    def get(name: str) -> str | None:
        value = values.get(name, "").strip()
        return value or None

    def secret(*names: str) -> Secret | None:
        for name in names:
            value = get(name)
            if value:
                return Secret(value)
        return None

    runpod_api = (get("THINNKA_RUNPOD_API") or "rest").lower()
    if runpod_api not in RUNPOD_APIS:
        raise ConfigError(
            f"THINNKA_RUNPOD_API must be one of {', '.join(RUNPOD_APIS)}, not {runpod_api!r}."
        )
    state_dir = Path(get("THINNKA_STATE_DIR") or "state").expanduser()
    if not state_dir.is_absolute():
        state_dir = (cwd or Path.cwd()) / state_dir
    return Settings(
        state_dir=state_dir,
        db_url=get("THINNKA_DB_URL"),
        runpod_api_key=secret("RUNPOD_API_KEY"),
        runpod_api_base_url=get("RUNPOD_API_BASE_URL") or DEFAULT_RUNPOD_API_BASE_URL,
        runpod_api=runpod_api,
        hf_token=secret("HF_TOKEN", "HUGGINGFACE_HUB_TOKEN"),
        hf_endpoint=get("HF_ENDPOINT"),
        ssh_public_key=get("SSH_PUBLIC_KEY") or get("RUNPOD_SSH_PUBLIC_KEY"),
        ssh_private_key_path=get("SSH_PRIVATE_KEY_PATH"),
        progress_webhook_url=get("PROGRESS_WEBHOOK_URL"),
        discord_webhook_url=get("DISCORD_WEBHOOK_URL"),
        wandb_api_key=secret("WANDB_API_KEY"),
        env_file=found,
        extra={k: v for k, v in values.items() if k.startswith("THINNKA_")},
        env_warnings=warnings,
        problems=_setting_problems(get),
    )
