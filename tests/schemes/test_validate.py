"""Schemes: what a valid scheme is, and how an invalid one is refused (file, line, what to do)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gm_agent.errors import SchemeError
from gm_agent.schemes import (
    FALSE_WORDS,
    StepView,
    ancestors,
    bind_params,
    check_tools,
    condition,
    find_scheme,
    list_schemes,
    load_scheme,
    parse_scheme,
    render,
    scheme_dirs,
    topological_order,
)
from gm_agent.tools import builtin_tools
from tests.conftest import REPO, gm

SHIPPED = sorted((REPO / "schemes").glob("*.yaml"))
FILE = Path("s.yaml")


def scheme(body: str) -> str:
    """A scheme's text: ``name`` on line 1, ``description`` on line 2, then ``body``."""
    return "name: s\ndescription: A scheme under test.\n" + textwrap.dedent(body)


def refusal(text: str) -> str:
    """The message ``parse_scheme`` refuses ``text`` with."""
    with pytest.raises(SchemeError) as caught:
        parse_scheme(text, FILE)
    return str(caught.value)


DIAMOND = scheme(
    """\
    steps:
      - {name: a, shell: "echo a"}
      - {name: b, shell: "echo b", depends_on: [a]}
      - {name: c, shell: "echo c", depends_on: [a]}
      - {name: d, shell: "echo {{ steps.b.output }} {{ steps.a.ok }}", depends_on: [b, c]}
    """
)


# --- the shipped schemes ----------------------------------------------------------


def test_gm_ships_test_and_fix_and_release_checklist() -> None:
    assert {path.stem for path in SHIPPED} >= {"test-and-fix", "release-checklist"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_each_shipped_scheme_validates_with_the_built_in_tools(path: Path) -> None:
    loaded = load_scheme(path)
    check_tools(loaded, builtin_tools().names())
    assert loaded.name == path.stem
    assert loaded.path == path
    assert topological_order(loaded)


def test_test_and_fix_runs_test_then_fix_then_retest() -> None:
    loaded = load_scheme(REPO / "schemes" / "test-and-fix.yaml")
    assert topological_order(loaded) == [["test"], ["fix"], ["retest"]]
    assert bind_params(loaded, {}) == {"test_cmd": "pytest -q"}
    fix = loaded.step("fix")
    assert (fix.kind, fix.line, fix.allowed_tools) == (
        "agent",
        9,
        ("read_file", "search", "edit_file", "run_shell"),
    )
    assert loaded.step("retest").retry is not None
    assert loaded.step("test").on_error == "continue"


def test_release_checklist_needs_a_version_and_checks_concurrently() -> None:
    loaded = load_scheme(REPO / "schemes" / "release-checklist.yaml")
    levels = topological_order(loaded)
    assert len(levels[0]) >= 2  # the checks do not wait for each other
    assert levels[-1] == ["tag"]
    with pytest.raises(SchemeError, match=r"'version' is required: give it with -p version="):
        bind_params(loaded, {})
    assert bind_params(loaded, {"version": "1.4.0"}) == {
        "version": "1.4.0",
        "changelog": "CHANGELOG.md",
    }


# --- the graph --------------------------------------------------------------------


def test_a_diamond_runs_in_three_levels() -> None:
    loaded = parse_scheme(DIAMOND, FILE)
    assert topological_order(loaded) == [["a"], ["b", "c"], ["d"]]
    assert ancestors(loaded, "d") == {"a", "b", "c"}
    assert ancestors(loaded, "b") == {"a"}
    assert ancestors(loaded, "a") == set()


def test_steps_and_parameters_know_their_lines() -> None:
    loaded = parse_scheme(
        scheme(
            """\
            params:
              n: {type: integer, default: 2}
            steps:
              - name: a
                shell: |
                  echo one
                retry:
                  attempts: 3
            """
        ),
        FILE,
    )
    step = loaded.steps[0]
    assert (loaded.params["n"].line, step.line) == (4, 6)
    assert step.key_lines == {"name": 6, "shell": 8, "retry": 9, "retry.attempts": 10}


# --- refusals: each names the file and the line -------------------------------------

REFUSED = [
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
            depends_on: [b]
          - name: b
            shell: echo
            depends_on: [a]
        """,
        4,
        "depends_on makes a cycle: a -> b -> a",
        id="cycle",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
          - name: b
            shell: echo
            depends_on: [a, x]
        """,
        8,
        "unknown step 'x' in depends_on of 'b' (line 6); known: a, b",
        id="unknown-step",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
          - name: a
            shell: echo again
        """,
        6,
        "two steps are named 'a' (lines 4 and 6)",
        id="duplicate-name",
    ),
    pytest.param(
        """\
        params:
          retries: {type: integer, default: three}
        steps:
          - {name: a, shell: echo}
        """,
        4,
        "parameter 'retries': default: bad parameter types: the default 'three' is not an integer",
        id="bad-default-type",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
          - name: b
            shell: echo
          - name: c
            depends_on: [a]
            shell: |
              echo first
              echo {{ steps.b.output }}
        """,
        12,
        "step 'c': shell: steps.b: 'b' is not a step 'c' depends on",
        id="not-an-ancestor",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: "echo {{ params.nope }}"
        """,
        5,
        "params.nope is not declared",
        id="undeclared-param",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: |
              echo first
              echo {{ steps.b.output
        """,
        7,
        "step 'a': shell: template syntax error: unexpected end of template",
        id="jinja-syntax-error",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: "echo first\\necho {{ steps.b.output"
        """,
        5,
        "step 'a': shell (line 2 of the template): template syntax error",
        id="jinja-syntax-error-in-a-quoted-string",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
            retry: {attempts: 0}
        """,
        6,
        "step 'a': retry.attempts: attempts is 0, but it counts every try, the first included",
        id="no-attempts",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            when: "{{ true }}"
        """,
        4,
        "a step needs exactly one of shell, tool, llm, agent, scheme; has none",
        id="no-body",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
            agent: {task: Fix it.}
        """,
        4,
        "a step needs exactly one of shell, tool, llm, agent, scheme; has shell and agent",
        id="two-bodies",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
            timeout: 5
        """,
        6,
        "step 'a': timeout: unknown key; did you mean 'timeout_s'?",
        id="unknown-key",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
          - name: b
            depends_on: [a]
            when: steps.a.failed
            shell: echo
        """,
        8,
        "'steps.a.failed' is not a template, so it is always true",
        id="when-without-braces",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
          - name: b
            depends_on: [a]
            shell: "echo {{ steps.a.outptu }}"
        """,
        8,
        "steps.a.outptu: a step's result has output, failed, ok, skipped, exit_code, value",
        id="unknown-result-field",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: {{ params.cmd }}
        """,
        5,
        "not valid YAML: found unhashable key; a value starting with {{ reads as a YAML mapping: quote it",
        id="unquoted-template",
    ),
    pytest.param(
        """\
        steps:
          - name: a
            shell: echo
            shell: echo twice
        """,
        6,
        "the key 'shell' appears twice here (first on line 5)",
        id="duplicate-key",
    ),
]


@pytest.mark.parametrize(("body", "line", "message"), REFUSED)
def test_an_invalid_scheme_is_refused_naming_file_line_and_problem(
    body: str, line: int, message: str
) -> None:
    said = refusal(scheme(body))
    assert said.startswith(f"s.yaml:{line}: "), said
    assert message in said


def test_a_file_cannot_set_what_the_loader_sets() -> None:
    said = refusal(scheme("steps:\n  - {name: a, shell: echo, line: 1}\n"))
    assert said.startswith("s.yaml:4: step 'a': line: unknown key")


def test_an_unknown_tool_is_refused_against_the_registry() -> None:
    loaded = parse_scheme(
        scheme("steps:\n  - name: a\n    agent: {task: Go., tools: [read_file, teleport]}\n"), FILE
    )
    with pytest.raises(
        SchemeError, match=r"^s.yaml:5: step 'a': agent.tools: unknown tool 'teleport'"
    ):
        check_tools(loaded, builtin_tools().names())


# --- parameters ---------------------------------------------------------------------

TYPED = scheme(
    """\
    params:
      n: {type: integer, default: 3}
      ratio: {type: number, default: 0.5}
      dry: {type: boolean, default: false}
      files: {type: array, default: []}
      env: {type: object, default: {}}
      mode: {type: string, enum: [fast, full], default: fast}
      version: {type: string}
    steps:
      - {name: a, shell: "echo {{ params.n }}"}
    """
)


@pytest.mark.parametrize(
    ("given", "bound"),
    [
        ({"n": "7"}, 7),
        ({"ratio": "2"}, 2.0),
        ({"dry": "YES"}, True),
        ({"dry": "0"}, False),
        ({"files": '["a.py", 1]'}, ["a.py", 1]),
        ({"env": '{"CI": "1"}'}, {"CI": "1"}),
        ({"mode": "full"}, "full"),
        ({"version": "007"}, "007"),
        ({"n": 9}, 9),
    ],
)
def test_given_strings_become_the_declared_type(given: dict[str, object], bound: object) -> None:
    values = bind_params(parse_scheme(TYPED, FILE), {"version": "1.0", **given})
    assert values[next(iter(given))] == bound


def test_defaults_fill_what_is_not_given() -> None:
    assert bind_params(parse_scheme(TYPED, FILE), {"version": "1.0"}) == {
        "n": 3,
        "ratio": 0.5,
        "dry": False,
        "files": [],
        "env": {},
        "mode": "fast",
        "version": "1.0",
    }


@pytest.mark.parametrize(
    ("given", "line", "message"),
    [
        ({"n": "three"}, 4, "the parameter 'n' takes an integer, like 3, not 'three'"),
        ({"n": "1.5"}, 4, "the parameter 'n' takes an integer, like 3, not '1.5'"),
        ({"ratio": "nan"}, 5, "takes a number, like 2.5, not 'nan'"),
        ({"dry": "maybe"}, 6, "takes true/false, yes/no or 1/0, not 'maybe'"),
        ({"files": "a.py"}, 7, "takes a JSON array, like [\"a\", 1], not 'a.py'"),
        ({"n": True}, 4, "takes an integer, like 3, not True"),
        (
            {"mode": "slow"},
            9,
            "the parameter 'mode' is 'slow', but must be one of ['fast', 'full']",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(
    given: dict[str, object], line: int, message: str
) -> None:
    with pytest.raises(SchemeError) as caught:
        bind_params(parse_scheme(TYPED, FILE), {"version": "1.0", **given})
    assert str(caught.value).startswith(f"s.yaml:{line}: "), str(caught.value)
    assert message in str(caught.value)


def test_unknown_and_missing_parameters_are_refused_listing_the_declared_ones() -> None:
    loaded = parse_scheme(TYPED, FILE)
    declared = "n (integer, default 3), ratio (number, default 0.5), dry (boolean, default False)"
    with pytest.raises(SchemeError) as unknown:
        bind_params(loaded, {"version": "1", "nn": "4"})
    assert "'s' has no parameter 'nn'; it declares: " + declared in str(unknown.value)
    with pytest.raises(SchemeError) as missing:
        bind_params(loaded, {})
    assert str(missing.value).startswith("s.yaml:10: the parameter 'version' is required")
    assert "version (string, required)" in str(missing.value)


# --- rendering ----------------------------------------------------------------------


def test_templates_read_params_and_earlier_results() -> None:
    steps = {"test": StepView(output="2 failed", failed=True, exit_code=1)}
    text = render(
        "{{ params.cmd }}: {{ steps.test.output }} ({{ steps.test.exit_code }}, ok={{ steps.test.ok }})",
        {"cmd": "pytest"},
        steps,
    )
    assert text == "pytest: 2 failed (1, ok=False)"


def test_shquote_makes_a_value_one_shell_word() -> None:
    assert render("git tag v{{ params.v | shquote }}", {"v": "1; rm -rf ~"}, {}) == (
        "git tag v'1; rm -rf ~'"
    )


def test_a_step_that_was_skipped_is_neither_ok_nor_failed() -> None:
    skipped = StepView(skipped=True)
    assert (skipped.ok, skipped.failed) == (False, False)
    assert StepView().ok


@pytest.mark.parametrize("text", sorted(FALSE_WORDS))
def test_a_condition_rendering_to_a_false_word_is_false(text: str) -> None:
    assert condition(f"  {text}\n", {}, {}) is False


@pytest.mark.parametrize(
    ("template", "held"),
    [
        ("{{ steps.test.failed }}", True),
        ("{{ steps.test.ok }}", False),
        ("{{ steps.test.value.count > 2 }}", True),
        ("{% if steps.test.exit_code == 0 %}yes{% endif %}", False),
        ("{{ steps.test.output }}", True),  # any other text is true
        ("no", True),  # only the listed words are false
    ],
)
def test_a_condition_is_true_unless_it_renders_false(template: str, held: bool) -> None:
    steps = {"test": StepView(output="boom", failed=True, exit_code=1, value={"count": 3})}
    assert condition(template, {}, steps) is held


def test_a_render_error_names_the_step_and_its_line() -> None:
    loaded = parse_scheme(DIAMOND, FILE)
    d = loaded.step("d")
    with pytest.raises(SchemeError) as caught:
        render(d.shell or "", {}, {"a": StepView()}, step=d, key="shell", path=FILE)
    said = str(caught.value)
    assert said.startswith("s.yaml:7: step 'd': shell: cannot render the template: ")
    assert "has no attribute 'b'" in said


def test_templates_run_in_the_sandbox() -> None:
    with pytest.raises(SchemeError, match="unsafe"):
        render("{{ steps.a.__class__.__mro__ }}", {}, {"a": StepView()})


# --- discovery ----------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_projects_schemes_come_first_and_win(workspace: Path) -> None:
    ours = write(
        workspace / ".gm" / "schemes" / "test-and-fix.yaml",
        "name: test-and-fix\ndescription: Ours.\nsteps:\n  - {name: t, shell: make test}\n",
    )
    assert scheme_dirs(workspace)[0] == ("project", workspace / ".gm" / "schemes")
    assert scheme_dirs(workspace)[1] == ("shipped", REPO / "schemes")
    entries = {entry.name: entry for entry in list_schemes(workspace)}
    assert (entries["test-and-fix"].source, entries["test-and-fix"].path) == ("project", ours)
    assert entries["release-checklist"].source == "shipped"
    assert find_scheme(workspace, "test-and-fix").description == "Ours."


def test_a_broken_scheme_is_listed_with_its_problem_and_hides_nothing(workspace: Path) -> None:
    write(workspace / ".gm" / "schemes" / "broken.yaml", "name: broken\nsteps: [\n")
    entries = {entry.name: entry for entry in list_schemes(workspace)}
    assert entries["broken"].problem is not None
    assert "broken.yaml:3: not valid YAML" in entries["broken"].problem
    assert entries["test-and-fix"].problem is None


def test_a_scheme_is_found_by_its_files_name_which_must_be_its_name(workspace: Path) -> None:
    write(
        workspace / ".gm" / "schemes" / "deploy.yaml",
        "name: ship\ndescription: Misnamed.\nsteps:\n  - {name: t, shell: make}\n",
    )
    with pytest.raises(SchemeError, match=r"deploy.yaml:1: the scheme is named 'ship'"):
        find_scheme(workspace, "deploy")
    with pytest.raises(SchemeError, match=r"no scheme named 'nope'.*known: .*test-and-fix"):
        find_scheme(workspace, "nope")


def validated(workspace: Path, path: Path) -> str:
    """What ``gm scheme validate PATH`` says on stderr; it must refuse (exit 2)."""
    result = gm("-C", str(workspace), "scheme", "validate", str(path), cwd=workspace)
    assert result.returncode == 2, result.stdout
    return result.stderr


def test_validate_follows_scheme_calls_to_find_cycles_and_missing_schemes(
    workspace: Path,
) -> None:
    schemes = workspace / ".gm" / "schemes"
    write(
        schemes / "ping.yaml",
        "name: ping\ndescription: P.\nsteps:\n  - {name: p, scheme: {name: pong}}\n",
    )
    write(
        schemes / "pong.yaml",
        "name: pong\ndescription: P.\nsteps:\n  - {name: q, scheme: {name: ping}}\n",
    )
    said = validated(workspace, schemes / "ping.yaml")
    assert "pong.yaml:4: step 'q' calls scheme 'ping'" in said
    assert "(ping -> pong -> ping); a scheme cannot call itself" in said
    missing = write(
        workspace / "m.yaml", scheme("steps:\n  - {name: a, scheme: {name: nowhere}}\n")
    )
    assert f"{missing}:4: step 'a': no scheme named 'nowhere'" in validated(workspace, missing)


def test_validate_checks_the_parameters_a_scheme_call_passes(workspace: Path) -> None:
    unknown = write(
        workspace / "u.yaml",
        scheme("steps:\n  - name: a\n    scheme: {name: test-and-fix, params: {nope: 1}}\n"),
    )
    assert "u.yaml:5: 'test-and-fix' has no parameter 'nope'" in validated(workspace, unknown)
    typed = write(
        workspace / "t.yaml",
        scheme("steps:\n  - name: a\n    scheme: {name: test-and-fix, params: {test_cmd: 5}}\n"),
    )
    assert "the parameter 'test_cmd' takes text, not 5" in validated(workspace, typed)
    required = write(
        workspace / "r.yaml",
        scheme("steps:\n  - name: a\n    scheme: {name: release-checklist}\n"),
    )
    assert "'release-checklist' needs the parameter 'version'" in validated(workspace, required)
    templated = write(
        workspace / "ok.yaml",
        scheme(
            "params: {v: {type: string}}\nsteps:\n  - name: a\n"
            "    scheme: {name: release-checklist, params: {version: '{{ params.v }}'}}\n"
        ),
    )
    ok = gm("-C", str(workspace), "scheme", "validate", str(templated), cwd=workspace)
    assert ok.returncode == 0, ok.stderr


def test_validate_checks_a_tool_steps_arguments_and_refuses_finish(workspace: Path) -> None:
    misspelt = write(
        workspace / "a.yaml",
        scheme("steps:\n  - name: a\n    tool: {name: read_file, args: {pth: x}}\n"),
    )
    assert "a.yaml:5: step 'a': read_file has no argument 'pth'" in validated(workspace, misspelt)
    missing = write(
        workspace / "b.yaml", scheme("steps:\n  - name: a\n    tool: {name: read_file}\n")
    )
    assert "read_file needs the argument 'path'" in validated(workspace, missing)
    typed = write(
        workspace / "c.yaml",
        scheme(
            "steps:\n  - name: a\n    tool: {name: read_file, args: {path: x, start_line: many}}\n"
        ),
    )
    assert "read_file argument 'start_line'" in validated(workspace, typed)
    finish = write(workspace / "d.yaml", scheme("steps:\n  - name: a\n    tool: {name: finish}\n"))
    assert "a tool step cannot call 'finish'" in validated(workspace, finish)
    shell = write(
        workspace / "e.yaml",
        scheme("steps:\n  - name: a\n    tool: {name: run_shell, args: {command: ls}}\n"),
    )
    assert "write it as a `shell:` step" in validated(workspace, shell)


def test_validating_a_file_in_a_scheme_folder_checks_its_name_too(workspace: Path) -> None:
    misnamed = write(
        workspace / ".gm" / "schemes" / "x.yaml",
        "name: other\ndescription: Misnamed.\nsteps:\n  - {name: t, shell: make}\n",
    )
    assert "x.yaml:1: the scheme is named 'other'" in validated(workspace, misnamed)


# --- the command ----------------------------------------------------------------------


def test_gm_scheme_validate_prints_the_levels(workspace: Path) -> None:
    path = write(workspace / "diamond.yaml", DIAMOND)
    result = gm("-C", str(workspace), "scheme", "validate", str(path), cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok: s (4 steps, levels: [a], [b, c], [d])\n"
    by_name = gm("-C", str(workspace), "scheme", "validate", "test-and-fix", cwd=workspace)
    assert by_name.stdout == "ok: test-and-fix (3 steps, levels: [test], [fix], [retest])\n"


def test_gm_scheme_validate_exits_2_with_file_and_line(workspace: Path) -> None:
    path = write(
        workspace / "bad.yaml", scheme("steps:\n  - {name: a, shell: echo, depends_on: [a]}\n")
    )
    result = gm("-C", str(workspace), "scheme", "validate", str(path), cwd=workspace)
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        result.stderr
        == f"gm: {path}:4: depends_on makes a cycle: a -> a (each waits for the next, so none can start); remove one of these dependencies\n"
    )


def test_gm_scheme_list_shows_name_source_and_description(workspace: Path) -> None:
    write(workspace / ".gm" / "schemes" / "broken.yaml", "name: broken\n")
    result = gm("-C", str(workspace), "scheme", "list", cwd=workspace)
    assert result.returncode == 0
    rows = [line.split(None, 2) for line in result.stdout.splitlines()]
    assert [
        "test-and-fix",
        "shipped",
        load_scheme(REPO / "schemes" / "test-and-fix.yaml").description,
    ] in rows
    assert "broken" not in result.stdout
    assert "broken.yaml:1: description: required: add it" in result.stderr
