"""Settings: typed, bounded, named in one line when wrong, and documented where users look."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError
from tests.servers import ROOT, SERVICE, TEST_SECRET, free_port, server_command

NAMES = {name.upper() for name in Settings.__struct_fields__}


def test_environment_values_are_converted() -> None:
    settings = Settings.from_env(
        {
            "COOKIE_SECURE": "true",
            "REDIS_TIMEOUT_SECONDS": "0.5",
            "QUESTIONS_PER_GAME": "12",
            "LOG_LEVEL": "debug",
            "JWT_SECRET": TEST_SECRET,
            "UNRELATED": "ignored",
        }
    )
    assert settings.cookie_secure is True
    assert settings.redis_timeout_seconds == 0.5
    assert settings.questions_per_game == 12
    assert settings.log_level == "debug"
    assert Settings.from_env({"JWT_SECRET": TEST_SECRET}) == Settings(jwt_secret=TEST_SECRET)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("COOKIE_SECURE", "ture", "COOKIE_SECURE='ture': expected true or false"),
        ("REDIS_TIMEOUT_SECONDS", "abc", "REDIS_TIMEOUT_SECONDS='abc': expected a number > 0"),
        ("REDIS_MAX_CONNECTIONS", "-3", "REDIS_MAX_CONNECTIONS='-3': expected a whole number >= 1"),
        ("QUESTIONS_PER_GAME", "2.5", "QUESTIONS_PER_GAME='2.5': expected a whole number"),
        ("ENVIRONMENT", "prod", "ENVIRONMENT='prod': expected one of development, production"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL='localhost:6379': expected text matching"),
    ],
)
def test_a_wrong_value_names_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"JWT_SECRET": TEST_SECRET, variable: value})
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_a_wrong_redis_url_never_shows_its_password() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"REDIS_URL": "civic-trivia-game:s3cret@redis.internal:6379/0"})
    assert str(info.value).startswith("REDIS_URL='***@redis.internal:6379/0': expected text")


def test_redis_tls_files_need_a_rediss_url_and_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA certificate")
    tls = {
        "REDIS_URL": "rediss://redis.internal:6380/0",
        "REDIS_CA_FILE": str(ca),
        "JWT_SECRET": TEST_SECRET,
    }
    assert Settings.from_env(tls).redis_ca_file == str(ca)
    with pytest.raises(SettingsError, match=r"^REDIS_CA_FILE: needs a rediss:// REDIS_URL"):
        Settings.from_env({**tls, "REDIS_URL": "redis://redis.internal:6379/0"})
    missing = str(tmp_path / "client.key")
    with pytest.raises(SettingsError, match=re.escape(f"REDIS_KEY_FILE={missing!r}: no such file")):
        Settings.from_env({**tls, "REDIS_KEY_FILE": missing})


@pytest.mark.processes
def test_the_service_refuses_to_start_with_one_line() -> None:
    env = {**os.environ, "COOKIE_SECURE": "ture", "REDIS_URL": "redis://127.0.0.1:1/0"}
    started = subprocess.run(
        server_command(SERVICE, free_port()),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode != 0
    assert started.stderr.strip() == "Invalid setting COOKIE_SECURE='ture': expected true or false"


def test_readme_and_env_example_list_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.MULTILINE))
    assert documented == NAMES
    example = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert example >= NAMES
    for other in example - NAMES:  # launcher and compose variables: documented elsewhere
        assert f"`{other}`" in readme, other


def test_compose_passes_every_setting_to_the_api() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    api = compose.split("\n  api:\n", 1)[1].split("\n  haproxy:\n", 1)[0]
    passed = set(re.findall(r"^      ([A-Z][A-Z0-9_]+):", api, re.MULTILINE))
    assert passed - {"WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"} == NAMES  # those two: uvicorn's
