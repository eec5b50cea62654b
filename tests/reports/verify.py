"""The documented verification of an exported package, as an investigator runs it: ``sha256sum -c`` on
the manifest, and ``openssl pkeyutl -verify`` of the manifest's Ed25519 signature."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def check_manifest(cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(cwd, "sha256sum", "-c", "manifest.sha256")


def verify_signature(cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(
        cwd,
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "signer.pem",
        "-rawin",
        "-in",
        "manifest.sha256",
        "-sigfile",
        "manifest.sig",
    )
