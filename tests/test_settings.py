"""Settings: .env discovery and precedence, secrets that never show themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinnka.errors import ConfigError
from thinnka.logs import redact
from thinnka.settings import SETTINGS_DOC, Secret, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_env_file_is_found_upward_and_overrides_the_process_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HF_TOKEN=from-dotenv\nRUNPOD_API_KEY=rpa_dotenv\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    settings = load_settings(environ={"HF_TOKEN": "from-process"}, cwd=nested)
    assert settings.hf_token == Secret("from-dotenv")
    assert settings.env_file == tmp_path / ".env"
    assert settings.state_dir == nested / "state"


def test_explicit_env_file_and_fallback_names(tmp_path: Path) -> None:
    env = tmp_path / "custom.env"
    env.write_text("HUGGINGFACE_HUB_TOKEN=hf_fallback\nRUNPOD_SSH_PUBLIC_KEY=ssh-ed25519 AAAA k\n")
    settings = load_settings(env, environ={}, cwd=tmp_path)
    assert settings.hf_token is not None and settings.hf_token.reveal() == "hf_fallback"
    assert settings.ssh_public_key == "ssh-ed25519 AAAA k"


def test_a_missing_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.env", environ={}, cwd=tmp_path)


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"HF_TOKEN": "hf_SECRET123", "RUNPOD_API_KEY": "rpa_SECRET456",
                 "WANDB_API_KEY": "wandb_SECRET789"},
        cwd=tmp_path,
    )  # fmt: skip
    text = repr(settings) + str(settings.hf_token)
    for secret in ("hf_SECRET123", "rpa_SECRET456", "wandb_SECRET789"):
        assert secret not in text
    assert redact("token=hf_SECRET123!", settings.secrets()) == "token=***!"


def test_db_url_and_base_url_settings(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"THINNKA_DB_URL": "sqlite:////tmp/x.db", "RUNPOD_API_BASE_URL": "http://h:1/"},
        cwd=tmp_path,
    )
    assert settings.database_url == "sqlite:////tmp/x.db"
    assert settings.graphql_url == "http://h:1/graphql"


def test_every_setting_is_in_example_env_and_the_readme() -> None:
    example = (ROOT / "example.env").read_text()
    readme = (ROOT / "README.md").read_text()
    for name, _ in SETTINGS_DOC:
        assert f"{name}=" in example, f"example.env lacks {name}"
        assert f"`{name}`" in readme, f"README's configuration table lacks {name}"
