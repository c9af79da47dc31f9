"""Which SSH key pair reaches the pod (the original's resolution order)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from thinnka.errors import ConfigError
from thinnka.options import RunOptions
from thinnka.settings import Settings

__all__ = ["KeyPair", "resolve_key_pair"]


@dataclass(frozen=True)
class KeyPair:
    public_key: str
    private_key_path: Path


def resolve_key_pair(options: RunOptions, settings: Settings, home: Path | None = None) -> KeyPair:
    """Public: flag > SSH_PUBLIC_KEY > RUNPOD_SSH_PUBLIC_KEY > ~/.ssh/id_ed25519.pub.
    Private: flag > SSH_PRIVATE_KEY_PATH > ~/.ssh/id_ed25519; it must exist."""
    ssh_dir = (home or Path.home()) / ".ssh"
    public = (options.ssh_public_key or settings.ssh_public_key or "").strip()
    if not public:
        default_pub = ssh_dir / "id_ed25519.pub"
        if default_pub.is_file():
            public = default_pub.read_text(encoding="utf-8").strip()
    if not public:
        raise ConfigError("SSH public key not found. Set SSH_PUBLIC_KEY or --ssh-public-key.")
    if not public.startswith(("ssh-", "ecdsa-", "sk-")):
        raise ConfigError(
            "The SSH public key does not look like one (expected 'ssh-ed25519 AAAA...')."
        )
    raw_private = options.ssh_private_key or settings.ssh_private_key_path
    private = Path(raw_private).expanduser() if raw_private else ssh_dir / "id_ed25519"
    if not private.is_file():
        raise ConfigError(f"SSH private key not found: {private}")
    return KeyPair(public_key=public, private_key_path=private)
