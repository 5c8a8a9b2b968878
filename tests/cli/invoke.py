"""Running the app in-process, and the check that a user error is one line with exit code 2."""

from typer.testing import CliRunner

from movierec.cli import app

runner = CliRunner()


def fails_cleanly(args, match):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in result.output
    assert match in message
    return message
