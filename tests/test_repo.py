"""Repository invariants: the README's two set-up commands and the CI script stay in step."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    cmds = []
    for b in blocks[:2]:
        lines = [ln for ln in b.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(lines) == 1, f"each of the README's first two blocks holds one command, got {lines}"
        cmds.append(lines[0].strip())
    return cmds


def test_readme_opens_with_main_and_test_commands():
    main, tests = readme_commands()
    assert "fastt2i" in main and "torch==2.13.0" in main
    assert "pytest" in tests and "torch==2.13.0" in tests
    # torch is pinned before anything that depends on it
    for cmd in (main, tests):
        assert cmd.index("torch==2.13.0") < cmd.index("-c constraints.txt")


def test_ci_runs_exactly_the_readme_test_command():
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in [ln.strip() for ln in ci]


def test_no_torchvision_anywhere():
    for path in list((ROOT / "src").rglob("*.py")) + [ROOT / "pyproject.toml", ROOT / "constraints.txt"]:
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+torchvision", text, flags=re.M), path
    assert "torchvision" not in (ROOT / "pyproject.toml").read_text()


def test_source_files_open_with_a_docstring_and_stay_short():
    for path in (ROOT / "src" / "fastt2i").rglob("*.py"):
        text = path.read_text()
        assert text.lstrip().startswith('"""'), f"{path} must open with a one-line docstring"
        assert len(text.splitlines()) <= 800, f"{path} is over 800 lines"
