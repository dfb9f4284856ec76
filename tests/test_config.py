from __future__ import annotations

import pytest

from vigil import config
from vigil.config import ConfigError, Secret


def write(tmp_path, body: str):
    p = tmp_path / "vigil.conf"
    p.write_text(body)
    return p


def test_defaults_load_without_a_file(monkeypatch):
    monkeypatch.delenv("VIGIL_CONF", raising=False)
    monkeypatch.chdir("/")
    cfg = config.load()
    assert cfg.get("Radius", "Auth_Port") == 1812
    assert cfg.get("Radius", "Acct_Port") == 1813
    assert cfg.get("Self Test", "Errors_Before_Restart") == 3
    assert cfg.get("Email", "Max_Sequential_Emails") == 5
    assert cfg.get("Email", "Look_Behind_sec") == 450


def test_source_names_are_kept(tmp_path):
    p = write(tmp_path, "[Self Test]\nTimeout_sec=2\nUser-Name=10.0.0.1\n"
                        "[Node IP Cache]\nCache_Cleanup_Time_sec=30\n"
                        "[Fraud_Detection]\nActive=No\n")
    cfg = config.load(p)
    assert cfg.get("Self Test", "Timeout_sec") == 2
    assert cfg.get("Self Test", "User-Name") == "10.0.0.1"
    assert cfg.get("Fraud_Detection", "Active") is False
    assert cfg.get("Node IP Cache", "Cache_Cleanup_Time_sec") == 30


def test_bad_value_names_file_section_option_and_what_is_allowed(tmp_path):
    p = write(tmp_path, "[Radius]\nAuth_Port=99999\n")
    with pytest.raises(ConfigError) as err:
        config.load(p)
    assert str(err.value) == f"Error: {p} [Radius] Auth_Port: 99999 is above the maximum 65535"
    assert err.value.exit_code == 2


@pytest.mark.parametrize("section,option,value,why", [
    ("Fraud_Detection", "Active", "perhaps", "is not a boolean"),
    ("Global", "last_resort_email", "root", "not a fully qualified e-mail"),
    ("Self Test", "Errors_Before_Restart", "0", "below the minimum 1"),
    ("Master", "URL", "postgresql://x/y", "not supported"),
    ("Master", "URL", "mysql+pymysql://u:pw@h/db", "Password option"),
    ("Log", "Log_To", "Printer", "not one of"),
    ("Self Test", "NAS-IP-Address", "localhost", "not an IP address"),
])
def test_each_kind_of_bad_value_is_refused(tmp_path, section, option, value, why):
    p = write(tmp_path, f"[{section}]\n{option}={value}\n")
    with pytest.raises(ConfigError, match=why):
        config.load(p)


def test_precedence_command_line_over_environment_over_file(tmp_path, monkeypatch):
    p = write(tmp_path, "[Self Test]\nTimeout_sec=7\n")
    assert config.load(p).get("Self Test", "Timeout_sec") == 7
    monkeypatch.setenv("VIGIL__SELF_TEST__TIMEOUT_SEC", "8")
    assert config.load(p).get("Self Test", "Timeout_sec") == 8
    cfg = config.load(p, overrides={("Self Test", "Timeout_sec"): "9"})
    assert cfg.get("Self Test", "Timeout_sec") == 9


def test_bad_environment_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL__RADIUS__ACCT_PORT", "abc")
    with pytest.raises(ConfigError, match="environment VIGIL__RADIUS__ACCT_PORT"):
        config.load(write(tmp_path, ""))


def test_secrets_never_print(tmp_path):
    cfg = config.load(write(tmp_path, "[Self Test]\nShared_Secret=hunter2\n"))
    s = cfg.get("Self Test", "Shared_Secret")
    assert isinstance(s, Secret)
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert s.reveal() == "hunter2"


def test_missing_file_and_broken_ini_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        config.load(tmp_path / "nope.conf")
    with pytest.raises(ConfigError, match="not a valid INI file"):
        config.load(write(tmp_path, "no section header\n"))


def test_shipped_config_is_valid():
    from pathlib import Path

    cfg = config.load(Path(__file__).parent.parent / "etc" / "vigil.conf")
    assert cfg.get("Site", "Role") in ("primary", "secondary", "central", "all")
