"""Tests that test: no assert that cannot fail, no wall-clock threshold in a unit test, `ruff check tests` clean."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

# Expressions whose truth value does not depend on what the test computed: a constant, a display (true whenever it
# has an element), an f-string (true unless empty), a lambda or a generator (always true).
VACUOUS = (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.JoinedStr, ast.Lambda, ast.GeneratorExp)
# A comprehension of verdicts (`assert [x > 0 for x in xs]`) is true whenever non-empty: `all(...)` was meant.
# (A comprehension of things, `assert not [p for p in ps if bad(p)]`, is a real emptiness check.)
COMPREHENSIONS = (ast.ListComp, ast.SetComp)
VERDICTS = (ast.Compare, ast.BoolOp)


def _vacuous(node: ast.expr) -> bool:
    if isinstance(node, COMPREHENSIONS):
        elt = node.elt
        return isinstance(elt, VERDICTS) or (isinstance(elt, ast.UnaryOp) and isinstance(elt.op, ast.Not))
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and any(isinstance(e, ast.Starred) for e in node.elts):
        return False  # `[*xs]` is empty when xs is
    if isinstance(node, ast.Dict) and None in node.keys:
        return False  # `{**d}` likewise
    return isinstance(node, VACUOUS)
# `assert value, <this>` where <this> looks like the other side of a comparison (`assert out.shape, (2, 3)`).
COMPARAND_MSG = (ast.Tuple, ast.List, ast.Set, ast.Compare)
CLOCKS = {"time", "perf_counter", "monotonic", "process_time", "thread_time", "time_ns", "perf_counter_ns",
          "monotonic_ns", "process_time_ns", "default_timer", "timeit"}
CLOCK_MODULES = {"time", "timeit"}


def _branches(node: ast.expr):
    """The expressions whose value can be the assert's verdict: both arms of `a if c else b`, every operand of
    `and` / `or`, the operand of `not`."""
    yield node
    if isinstance(node, ast.IfExp):
        yield from _branches(node.body)
        yield from _branches(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for v in node.values:
            yield from _branches(v)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield from _branches(node.operand)


def vacuous_asserts(source: str, filename: str = "<test>") -> list[str]:
    """`file:line: why` for every assert that cannot fail (or cannot pass) whatever the code under test does."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Assert):
            continue
        where = f"{filename}:{node.lineno}"
        for b in _branches(node.test):
            if _vacuous(b):
                found.append(f"{where}: `assert {ast.unparse(node.test)[:80]}` rests on a {type(b).__name__} "
                             f"({ast.unparse(b)[:50]}) whose truth does not depend on the code under test "
                             "(`assert a == b if c else d` is `(a == b) if c else d`: parenthesise the conditional)")
                break
        if node.msg is not None and (
            isinstance(node.msg, ast.Compare)
            or (isinstance(node.msg, COMPARAND_MSG) and isinstance(node.test, (ast.Name, ast.Attribute, ast.Subscript)))
            or (isinstance(node.msg, ast.Constant) and not isinstance(node.msg.value, str))
        ):
            found.append(f"{where}: `assert {ast.unparse(node.test)[:40]}, {ast.unparse(node.msg)[:40]}` "
                         f"checks only that the first part is truthy; was `==` meant instead of `,`?")
    return found


def _is_clock_call(node: ast.AST, clock_names: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f.value.id in CLOCK_MODULES and f.attr in CLOCKS
    return isinstance(f, ast.Name) and f.id in clock_names


def _uses(node: ast.AST, tainted: set[str], clock_names: set[str]) -> bool:
    return any(_is_clock_call(n, clock_names) or (isinstance(n, ast.Name) and n.id in tainted) for n in ast.walk(node))


def _walk(scope: ast.AST):
    """ast.walk within one scope: the module's own statements stop at function definitions; a function's include
    its nested functions (closures see its names)."""
    todo = [scope]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(scope, ast.Module) and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            todo.append(child)


def timing_asserts(source: str, filename: str = "<test>") -> list[str]:
    """`file:line` of every assert over a clock reading (time.perf_counter() / time() / monotonic() ..., or a variable
    computed from one, such as `elapsed = time.perf_counter() - t0`). A deadline loop waiting for a subprocess
    (`while time.time() < deadline`, or an `assert time.time() < deadline` inside a `while` loop) is fine: it bounds
    a wait, it does not fail a test for being slow."""
    if "time" not in source:  # neither module imported: nothing to find (and most files are skipped fast)
        return []
    tree = ast.parse(source, filename)
    in_wait_loop = {id(n) for w in ast.walk(tree) if isinstance(w, ast.While) for s in w.body for n in ast.walk(s)}
    clock_names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   and n.module in CLOCK_MODULES for a in n.names if a.name in CLOCKS}
    found: dict[int, str] = {}
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in scopes:
        tainted: set[str] = set()
        assigns = [n for n in _walk(scope) if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))]
        while True:  # names computed from a clock reading, transitively
            before = len(tainted)
            for a in assigns:
                if a.value is not None and _uses(a.value, tainted, clock_names):
                    targets = a.targets if isinstance(a, ast.Assign) else [a.target]
                    tainted |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if len(tainted) == before:
                break
        for n in _walk(scope):
            if isinstance(n, ast.Assert) and id(n) not in in_wait_loop and _uses(n.test, tainted, clock_names):
                found[n.lineno] = (f"{filename}:{n.lineno}: `assert {ast.unparse(n.test)[:80]}` times the code; "
                                   "speed belongs in benchmarks/, check the mechanism (calls counted, work skipped)")
    return [found[line] for line in sorted(found)]


def _test_files() -> list[Path]:
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 20  # the glob found the suite
    return files


def test_no_vacuous_asserts_in_the_suite():
    found = [f for p in _test_files() for f in vacuous_asserts(p.read_text(), str(p.relative_to(ROOT)))]
    assert not found, "\n".join(found)


def test_no_wall_clock_asserts_in_the_suite():
    found = [f for p in _test_files() for f in timing_asserts(p.read_text(), str(p.relative_to(ROOT)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("snippet", [
    "assert fused.shape == (3, 5, 10, 10) if up else (3, 5, 5, 5)",  # the gigagan bug: `(a == b) if up else (...)`
    "assert x == 1 if flag else 'skipped'",
    "assert (a, b)",
    "assert (a == 1, 'message')",
    "assert 'not empty'",
    "assert f'{x} is checked'",
    "assert 1",
    "assert [1, 2]",
    "assert {'k': v}",
    "assert {a, b}",
    "assert lambda: x == 1",
    "assert (x > 0 for x in xs)",
    "assert [x > 0 for x in xs]",
    "assert {x == y for x in xs}",
    "assert not [not x for x in xs]",
    "assert ok or 'fallback'",
    "assert ok and ()",
    "assert not (a, b)",
    "assert out.shape, (2, 3)",
    "assert x, y == 2",
    "assert x, 3",
])
def test_checker_flags_asserts_that_cannot_fail(snippet):
    assert len(vacuous_asserts(snippet)) == 1, snippet


@pytest.mark.parametrize("snippet", [
    "assert fused.shape == ((3, 5, 10, 10) if up else (3, 5, 5, 5))",  # the fix
    "assert x",
    "assert x == (1, 2)",
    "assert all(x > 0 for x in xs)",
    "assert torch.equal(a, b), (i, j)",
    "assert ok, f'row {i}'",
    "assert ok, 'message'",
    "assert gv and gt and not (gv & gt)",
    "assert (a if c else b) == 3",
    "assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]",
    "assert [p for p in paths if p.is_file()]",
    "assert [*found]",
])
def test_checker_passes_real_asserts(snippet):
    assert vacuous_asserts(snippet) == [], snippet


def test_checker_finds_the_original_gigagan_assert():
    src = textwrap.dedent("""
        @pytest.mark.parametrize("up", [False, True])
        def test_fused(up):
            fused = conv(x, w1, fused=True)
            assert fused.shape == (3, 5, 10, 10) if up else (3, 5, 5, 5)
    """)
    (found,) = vacuous_asserts(src, "test_gigagan_nn.py")
    assert found.startswith("test_gigagan_nn.py:5: ") and "rests on a Tuple" in found


def test_timing_checker():
    flagged = textwrap.dedent("""
        import time
        from time import perf_counter as clock

        def test_a():
            t0 = time.perf_counter()
            run()
            assert time.perf_counter() - t0 < 1.0

        def test_b():
            t0 = time.time()
            run()
            elapsed = time.time() - t0
            assert elapsed < 1.0, elapsed

        def test_c():
            start = clock()
            run()
            assert clock() - start < 2

        def test_d():
            t = time.monotonic()
            run()
            took = time.monotonic() - t
            ms = took * 1000
            assert ok and ms < 5
    """)
    assert [f.split(":")[1] for f in timing_asserts(flagged)] == ["8", "14", "19", "26"]
    fine = textwrap.dedent("""
        import time

        def test_deadline():
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                time.sleep(0.1)
            assert proc.returncode == 0

        def test_waits_for_a_subprocess():
            deadline = time.time() + 120
            while not started():
                assert time.time() < deadline, "never started"
                time.sleep(0.02)

        def test_reported_seconds():
            r = evaluate()
            assert r["seconds"] >= 0

        def test_other_scope():
            t = 3
            assert t > 0  # `t` holds a clock reading only in test_d's scope
    """)
    assert timing_asserts(flagged + fine) == timing_asserts(flagged)
    assert timing_asserts(fine) == []


def _ruff() -> list[str] | None:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    exe = shutil.which("ruff")
    return [exe] if exe else None


def test_ruff_rule_selection_is_configured():
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert {"B", "F631", "F632", "PLW0129"} <= set(lint["select"])
    assert not {"B011", "B015", "B018"} & set(lint.get("ignore", []))


def test_ruff_check_tests_is_clean():
    cmd = _ruff()
    if cmd is None:
        pytest.skip("ruff is not installed (it is in the `test` extra: pip install -e .[test])")
    proc = subprocess.run([*cmd, "check", "--no-cache", "--output-format", "concise", "tests"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
