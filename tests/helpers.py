"""Small helpers shared by the CLI-level tests."""

from energytui.main import main


def run_cli(capsys, *args):
    """Run `energytui ARGS` in-process; (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
