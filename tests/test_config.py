from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ------------------------------------------------ unknown names (issue 9)

def test_misspelt_option_is_an_error_with_a_suggestion(tmp_path):
    p = write(tmp_path, "[Radius]\nAuth_Prot=1999\n")
    with pytest.raises(ConfigError) as err:
        config.load(p)
    assert str(err.value) == (f"Error: {p} [Radius] Auth_Prot: unknown option; "
                              "did you mean Auth_Port?")
    assert err.value.exit_code == 2


def test_unknown_section_is_an_error_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"\[Self Tset\]: unknown section; did you mean "
                                          r"\[Self Test\]\?"):
        config.load(write(tmp_path, "[Self Tset]\nTimeout_sec=2\n"))
    with pytest.raises(ConfigError, match=r"\[Frobnicator\]: unknown section$"):
        config.load(write(tmp_path, "[Frobnicator]\nx=1\n"))


def test_names_are_matched_without_regard_to_case(tmp_path):
    cfg = config.load(write(tmp_path, "[radius]\nauth_port=1999\n"))
    assert cfg.get("Radius", "Auth_Port") == 1999
    with pytest.raises(ConfigError, match=r"\[Radius\] auth_port: set twice"):
        config.load(write(tmp_path, "[Radius]\nAuth_Port=1999\nauth_port=1998\n"))
    with pytest.raises(ConfigError, match=r"\[radius\]: section written twice"):
        config.load(write(tmp_path, "[Radius]\n[radius]\n"))


def test_default_section_is_not_copied_into_every_section(tmp_path):
    # configparser's [DEFAULT] would silently add its options to every section
    with pytest.raises(ConfigError, match=r"\[DEFAULT\]: unknown section"):
        config.load(write(tmp_path, "[DEFAULT]\nTimeout_sec=2\n[Self Test]\n"))


def test_limited_load_ignores_other_sections_options_but_not_unknown_sections(tmp_path):
    p = write(tmp_path, "[Radius]\nAuth_Prot=1\n[Self Test]\nTimeout_sec=2\n")
    assert config.load(p, sections=["Self Test"]).get("Self Test", "Timeout_sec") == 2
    with pytest.raises(ConfigError, match="unknown section"):
        config.load(write(tmp_path, "[Radus]\n[Self Test]\n"), sections=["Self Test"])


# -------------------------------------------------- cross-option rules

def test_auth_and_acct_ports_must_differ(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, "[Radius]\nAuth_Port=1812\nAcct_Port=1812\n"))
    assert str(err.value).endswith("[Radius] Acct_Port: must differ from Auth_Port (both are 1812)")
    # the same rule whichever layer sets the value
    monkeypatch.setenv("VIGIL__RADIUS__ACCT_PORT", "1999")
    with pytest.raises(ConfigError, match="must differ from Auth_Port"):
        config.load(write(tmp_path, "[Radius]\nAuth_Port=1999\n"))


def test_rules_of_sections_not_loaded_are_not_checked(tmp_path):
    p = write(tmp_path, "[Radius]\nAuth_Port=1812\nAcct_Port=1812\n")
    assert config.load(p, sections=["Self Test"]).get("Self Test", "Timeout_sec") == 5


# ------------------------------------------------ files that cannot be read

def test_directory_non_utf8_and_unreadable_paths_are_clear(tmp_path):
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path)
    assert str(err.value) == f"Error: {tmp_path}: is a directory, not a configuration file"
    latin = tmp_path / "latin.conf"
    latin.write_bytes(b"[Site]\nName=caf\xe9\n")
    with pytest.raises(ConfigError) as err:
        config.load(latin)
    assert str(err.value) == f"Error: {latin}: not UTF-8 text (byte 0xe9 on line 2)"
    # /proc/self/mem opens but cannot be read from offset 0: an OSError other than the above
    with pytest.raises(ConfigError, match=r"^Error: /proc/self/mem: cannot be read: "):
        config.load("/proc/self/mem")


@pytest.mark.parametrize("body,why", [
    (None, "is a directory"),
    (b"[Site]\nName=\xff\n", "not UTF-8 text"),
    (b"[Radius]\nAuth_Prot=1\n", "did you mean Auth_Port?"),
    (b"[Radius]\nAuth_Port=1813\n", "must differ from Auth_Port"),
])
@pytest.mark.integration
def test_config_check_exits_2_with_one_line_and_no_traceback(tmp_path, body, why):
    import subprocess
    import sys

    target = tmp_path
    if body is not None:
        target = tmp_path / "v.conf"
        target.write_bytes(body)
    proc = subprocess.run([sys.executable, "-m", "vigil.cli", "-c", str(target), "config",
                           "check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"Error: {target}") and why in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


# -------------------------------------------- the decoder over any bytes

SHIPPED = (Path(__file__).parent.parent / "etc" / "vigil.conf").read_bytes()


def _load_bytes(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vigil-conf-") as d:
        p = Path(d) / "vigil.conf"
        p.write_bytes(data)
        try:
            cfg = config.load(p)
        except ConfigError as exc:
            assert str(exc).startswith(f"Error: {p}") or str(exc).startswith("Error: environment")
            return
        # what loads is usable: every declared option has its converted value
        for opt in config.declared():
            cfg.get(opt.section, opt.name)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_config_or_a_config_error(data):
    _load_bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_shipped_config_gives_a_config_or_a_config_error(data):
    body = bytearray(SHIPPED)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(body)))
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "line"]))
        if kind == "flip" and pos < len(body):
            body[pos] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            body[pos:pos] = data.draw(st.binary(min_size=1, max_size=20))
        elif kind == "delete":
            del body[pos:pos + data.draw(st.integers(1, 40))]
        else:  # a plausible but hostile line
            line = data.draw(st.sampled_from([
                b"[Radius]\n", b"Auth_Port=0\n", b"Acct_Port=1812\n", b"[DEFAULT]\nx=1\n",
                b"Timeout_sec=99999999999999999999999\n", b"URL=mysql://a:b@h/d\n",
                b"[Self Test]\n[Self Test]\n", b"  continued\n", b"=\n", b"[]\n",
                b"Level=\x00\n", b"Log_To=File\nLog_To=File\n", b"NAS-IP-Address=::1%eth0\n",
            ]))
            body[pos:pos] = line
    _load_bytes(bytes(body))
