"""Settings precedence, keystores, usage errors and the spec flags: the parts that need no chain.

An unreachable URL replaces the node where a test only needs to see which URL a command chose.
"""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path

import pytest
from eth_account import Account

from offchain_workers.cli.errors import CliError
from offchain_workers.cli.output import Progress
from offchain_workers.cli.query_spec import parse_bins, spec_from_flags
from pmsr_chain.keystore import unlock_keystore

from .helpers import assert_one_line_error, free_port, run_cli


def _new_wallet(env: dict[str, str], name: str) -> str:
    result = run_cli("wallet", "new", name, "--light-kdf", "--json", env=env)
    assert result.status == 0, result
    return str(result.json()["address"])


def test_keystore_setting_precedence(cli_env: dict[str, str]) -> None:
    addresses = {name: _new_wallet(cli_env, name) for name in ("from-option", "from-env", "from-config")}
    (Path(cli_env["PMSR_DATA_DIR"]) / "config.toml").write_text('keystore = "from-config"\n')

    from_config = run_cli("wallet", "address", env=cli_env)
    from_env = run_cli("wallet", "address", env={**cli_env, "PMSR_KEYSTORE": "from-env"})
    from_option = run_cli("wallet", "address", "--keystore", "from-option", env={**cli_env, "PMSR_KEYSTORE": "from-env"})

    assert from_config.stdout.strip() == addresses["from-config"]
    assert from_env.stdout.strip() == addresses["from-env"]
    assert from_option.stdout.strip() == addresses["from-option"]


def test_rpc_setting_precedence(cli_env: dict[str, str]) -> None:
    config_url, env_url, option_url = (f"http://127.0.0.1:{free_port()}" for _ in range(3))
    config_path = Path(cli_env["PMSR_DATA_DIR"]) / "config.toml"
    config_path.parent.mkdir(parents=True)
    config_path.write_text(f'rpc = "{config_url}"\n')
    address = "0x" + "11" * 20

    from_config = run_cli("wallet", "balance", address, env=cli_env)
    from_env = run_cli("wallet", "balance", address, env={**cli_env, "PMSR_RPC_URL": env_url})
    from_option = run_cli("wallet", "balance", address, "--rpc", option_url, env={**cli_env, "PMSR_RPC_URL": env_url})

    assert_one_line_error(from_config, config_url, f"(from {config_path})")
    assert_one_line_error(from_env, env_url, "(from PMSR_RPC_URL)")
    assert_one_line_error(from_option, option_url, "(from --rpc)")


def test_global_options_after_the_command(tmp_path: Path) -> None:
    env = {"PMSR_PASSWORD": "p"}
    before_command = run_cli("--data-dir", str(tmp_path / "a"), "wallet", "list", "--json", env=env)
    after_command = run_cli("wallet", "list", "--data-dir", str(tmp_path / "a"), "--json", env=env)

    assert before_command.json() == after_command.json() == []


def test_config_file_unknown_key(cli_env: dict[str, str]) -> None:
    config_path = Path(cli_env["PMSR_DATA_DIR"]) / "config.toml"
    config_path.parent.mkdir(parents=True)
    config_path.write_text('rpc_url = "http://127.0.0.1:8545"\n')

    result = run_cli("wallet", "list", env=cli_env)

    assert_one_line_error(result, "unknown key 'rpc_url'", str(config_path), "keystore, password_file, rpc")


def test_wallet_new_is_a_standard_keystore(cli_env: dict[str, str]) -> None:
    created = run_cli("wallet", "new", "alice", "--light-kdf", "--json", env=cli_env).json()
    path = Path(created["path"])

    account = unlock_keystore(path, cli_env["PMSR_PASSWORD"])

    assert account.address == created["address"]
    assert path.stat().st_mode & 0o777 == 0o600
    listed = run_cli("wallet", "list", "--json", env=cli_env).json()
    assert listed == [{"name": "alice", "address": created["address"], "path": str(path)}]


def test_wallet_new_refuses_existing_name(cli_env: dict[str, str]) -> None:
    _new_wallet(cli_env, "alice")
    keystore = Path(cli_env["PMSR_DATA_DIR"]) / "keystores" / "alice.json"
    before = keystore.read_bytes()

    result = run_cli("wallet", "new", "alice", "--light-kdf", env=cli_env)

    assert_one_line_error(result, "keystore 'alice' already exists", "another name")
    assert keystore.read_bytes() == before


def test_wallet_import_from_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    account = Account.create()
    key_file = tmp_path / "key.txt"
    key_file.write_text(account.key.hex() + "\n")

    result = run_cli("wallet", "import", "imported", "--private-key-file", str(key_file), "--light-kdf", "--json",
                     env=cli_env)

    assert result.status == 0, result
    assert result.json()["address"] == account.address
    assert account.key.hex().removeprefix("0x") not in result.stdout + result.stderr


def test_wallet_import_invalid_key_is_not_echoed(cli_env: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("abcdef0123456789")

    result = run_cli("wallet", "import", "broken", "--private-key-file", str(key_file), env=cli_env)

    assert_one_line_error(result, "invalid private key", "64 hex digits")
    assert "abcdef0123456789" not in result.stderr
    assert not (Path(cli_env["PMSR_DATA_DIR"]) / "keystores" / "broken.json").exists()


def test_passphrase_never_printed(cli_env: dict[str, str]) -> None:
    secret = "s3cret passphrase for the log check"
    env = {**cli_env, "PMSR_PASSWORD": secret}

    created = run_cli("--debug", "wallet", "new", "logged", "--light-kdf", env=env)
    failed = run_cli("--debug", "wallet", "fund", "logged", "1ether", "--keystore", "logged",
                     "--rpc", f"http://127.0.0.1:{free_port()}", env=env)

    assert created.status == 0
    assert failed.status == 1
    for output in (created.stdout, created.stderr, failed.stdout, failed.stderr):
        assert secret not in output


def test_no_passphrase_without_terminal(cli_env: dict[str, str]) -> None:
    env = {key: value for key, value in cli_env.items() if key != "PMSR_PASSWORD"}

    result = run_cli("wallet", "new", "alice", env=env)

    assert_one_line_error(result, "no passphrase", "PMSR_PASSWORD", "--password-file")
    assert not (Path(cli_env["PMSR_DATA_DIR"]) / "keystores" / "alice.json").exists()


def test_password_file_drops_one_line_break(cli_env: dict[str, str], tmp_path: Path) -> None:
    password_file = tmp_path / "passphrase"
    password_file.write_text("from a file\n")
    env = {key: value for key, value in cli_env.items() if key != "PMSR_PASSWORD"}

    created = run_cli("wallet", "new", "filed", "--light-kdf", "--password-file", str(password_file), "--json", env=env)

    assert created.status == 0, created
    assert unlock_keystore(Path(created.json()["path"]), "from a file").address == created.json()["address"]


def test_usage_errors_are_one_line(cli_env: dict[str, str]) -> None:
    assert_one_line_error(run_cli("nonsense", env=cli_env), "invalid choice: 'nonsense'", "pmsr --help", status=2)
    assert_one_line_error(run_cli("query", "status", "three", env=cli_env), "invalid query id 'three'", status=2)
    assert_one_line_error(run_cli("chain", env=cli_env), "pmsr chain", "required", status=2)


def test_help_exits_zero(cli_env: dict[str, str]) -> None:
    result = run_cli("query", "propose", "--help", env=cli_env)

    assert result.status == 0
    assert "--accept-window" in result.stdout


# --------------------------------------------------------------------------------------------------
# Specs from flags


def test_histogram_bins_as_range() -> None:
    assert parse_bins("0:1000:4") == ["0", "250", "500", "750", "1000"]
    assert parse_bins("0,2.5,10") == ["0", "2.5", "10"]
    with pytest.raises(CliError, match="not a finite decimal"):
        parse_bins("0:1:3")


def test_mean_clip_covers_owners_with_fewer_rows() -> None:
    spec = spec_from_flags(template="mean", columns=["wage"], bins=None, clip="100:2000", row_filter=None,
                           contribution_bound=3, fractional_bits=8, epsilon=1_000_000, exact=False)

    assert [(c.low, c.high) for c in spec.clip] == [("0", "6000"), ("0", "3")]


def test_ols_clip_from_term_ranges() -> None:
    spec = spec_from_flags(template="ols", columns=["log(wage)", "education", "ethnicity=afam"], bins=None,
                           clip="log(wage)=0:10,education=-1:20", row_filter=None, contribution_bound=1,
                           fractional_bits=8, epsilon=None, exact=True)
    bounds = dict(zip(spec.schema, ((Fraction(c.low), Fraction(c.high)) for c in spec.clip)))

    assert bounds["XtX[intercept,intercept]"] == (0, 1)
    assert bounds["XtX[education,education]"] == (0, 400)
    assert bounds["XtX[intercept,education]"] == (-1, 20)
    assert bounds["XtX[education,ethnicity_afam]"] == (-1, 20)
    assert bounds["Xty[education,log(wage)]"] == (-10, 200)
    assert bounds["yty[log(wage)]"] == (0, 100)
    assert bounds["n"] == (0, 1)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"template": "histogram", "columns": ["wage"]}, "histogram needs --bins"),
        ({"template": "sum", "columns": ["a", "b"], "clip": "0:1"}, "exactly one column"),
        ({"template": "mean", "columns": ["wage"]}, "mean needs --clip"),
        ({"template": "ols", "columns": ["wage", "x"], "clip": "wage=0:1"}, "no range for x"),
        ({"template": "crosstab"}, "needs a spec file"),
        ({"template": "count", "epsilon": None, "exact": False}, "pass --epsilon"),
    ],
)
def test_spec_flag_errors_name_the_flag(flags: dict[str, object], message: str) -> None:
    arguments = {"template": "count", "columns": None, "bins": None, "clip": None, "row_filter": None,
                 "contribution_bound": 1, "fractional_bits": 16, "epsilon": 1_000_000, "exact": False}
    arguments.update(flags)

    with pytest.raises(CliError, match=message):
        spec_from_flags(**arguments)  # type: ignore[arg-type]


def test_progress_without_terminal_prints_counts() -> None:
    stream = io.StringIO()
    progress = Progress("owners", 4, stream=stream, interval=0.0)

    progress.update(1, "submitting")
    progress.update(1, "submitting")
    progress.update(4, "done")
    progress.close()

    lines = stream.getvalue().splitlines()
    assert [line.split(" [")[0] for line in lines] == ["owners: 1/4 (submitting)", "owners: 4/4 (done)"]
    assert "\r" not in stream.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_terminal_redraws_one_line() -> None:
    stream = _Terminal()
    progress = Progress("owners", 4, stream=stream)

    progress.update(1, "submitting")
    progress.update(2, "submitting")
    progress.close()

    text = stream.getvalue()
    assert text.count("\r\033[K") == 3
    assert text.endswith("\n")
    assert text.rstrip("\n").rsplit("\r\033[K", 1)[1].startswith("owners: 2/4 (submitting)")


def test_json_output_is_one_document(cli_env: dict[str, str]) -> None:
    _new_wallet(cli_env, "alice")

    result = run_cli("wallet", "list", "--json", env=cli_env)

    assert isinstance(json.loads(result.stdout), list)
