"""Skills: SKILL.md folders in the agentskills.io format, found in the project,
the user's config folder and among the built-ins, first one wins."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from gm_agent.cli import main
from gm_agent.errors import SkillError, UserError
from gm_agent.skills import (
    BUILTIN_DIR,
    Skill,
    catalog,
    discover_in,
    discover_skills,
    parse_skill,
    skill_dirs,
)
from tests.conftest import gm

BUILTINS = sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_dir())


def write_skill(root: Path, name: str, text: str | None = None, **extra: str) -> Path:
    """Write ``root/name/SKILL.md`` (a valid one unless ``text`` is given) and return it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if text is None:
        fields = {"name": name, "description": f"The {name} skill.", **extra}
        keys = "".join(f"{key}: {value}\n" for key, value in fields.items())
        text = f"---\n{keys}---\n# {name}\n\nDo it.\n"
    path = folder / "SKILL.md"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """An environment whose home is a fresh folder: no real user skills leak in."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def user_skills(environ: dict[str, str]) -> Path:
    return Path(environ["HOME"]) / ".config" / "gm" / "skills"


def project_skills(workspace: Path) -> Path:
    return workspace / ".gm" / "skills"


# --- the format --------------------------------------------------------------


def test_a_skill_has_front_matter_fields_and_a_markdown_body(tmp_path: Path) -> None:
    path = write_skill(
        tmp_path,
        "pdf-tools",
        "---\nname: pdf-tools\ndescription: Fill PDF forms.\nlicense: MIT\n"
        "compatibility: Needs poppler\nmetadata:\n  author: ann\n  version: '1.0'\n"
        "allowed-tools: read_file run_shell\n---\n\n# PDF\n\nUse pdftotext.\n",
    )
    skill = parse_skill(path, "project")
    assert (skill.name, skill.description, skill.source) == (
        "pdf-tools",
        "Fill PDF forms.",
        "project",
    )
    assert skill.path == path
    assert skill.body == "# PDF\n\nUse pdftotext."
    assert (skill.license, skill.compatibility) == ("MIT", "Needs poppler")
    assert dict(skill.metadata) == {"author": "ann", "version": "1.0"}
    assert skill.allowed_tools == ("read_file", "run_shell")


def test_allowed_tools_may_also_be_a_yaml_list(tmp_path: Path) -> None:
    path = write_skill(
        tmp_path,
        "lister",
        "---\nname: lister\ndescription: d\nallowed-tools: [search, list_dir]\n---\n",
    )
    skill = parse_skill(path, "user")
    assert skill.allowed_tools == ("search", "list_dir")
    assert skill.body == ""  # the specification sets no rules for the body


def test_a_skill_is_frozen(tmp_path: Path) -> None:
    skill = parse_skill(write_skill(tmp_path, "a"), "builtin")
    with pytest.raises(AttributeError):
        skill.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("# no front matter\n", 1, None, "must begin with YAML front matter"),
        ("---\nname: good\ndescription: d\n", 1, None, "never closed"),
        ("---\nname: good\ndescription: [unclosed\n---\n", 4, None, "not valid YAML"),
        ("---\nname: good\ndescription: To: do\n---\n", 3, None, "quote a value that holds ': '"),
        ("---\nname: good\ndescription: d\n\x07\n---\n", 4, None, "unacceptable character #x0007"),
        ("---\n- a list\n---\n", 2, None, "must be a mapping"),
        ("---\ndescription: d\n---\n", 1, "name", "missing: add `name: good`"),
        ("---\nname:\ndescription: d\n---\n", 2, "name", "must not be empty"),
        ("---\nname: 12\ndescription: d\n---\n", 2, "name", "must be a string, not a number"),
        ("---\nname: Good_One\ndescription: d\n---\n", 2, "name", "e.g. 'good-one'"),
        ("---\nname: -good\ndescription: d\n---\n", 2, "name", "single hyphens"),
        ("---\nname: go--od\ndescription: d\n---\n", 2, "name", "single hyphens"),
        (f"---\nname: {'a' * 65}\ndescription: d\n---\n", 2, "name", "the limit is 64"),
        (
            "---\nname: other\ndescription: d\n---\n",
            2,
            "name",
            "must equal the name of its folder, 'good'",
        ),
        ("---\nname: good\n---\n", 1, "description", "missing"),
        ("---\nname: good\ndescription: '  '\n---\n", 3, "description", "must not be empty"),
        (
            f"---\nname: good\n\ndescription: {'x' * 1025}\n---\n",
            4,
            "description",
            "1025 characters long; the limit is 1024",
        ),
        (
            f"---\nname: good\ndescription: d\ncompatibility: {'x' * 501}\n---\n",
            4,
            "compatibility",
            "the limit is 500",
        ),
        (
            "---\nname: good\ndescription: d\nmetadata:\n  a: b\n  version: 1.0\n---\n",
            6,
            "metadata",
            'quote them, e.g. version: "1.0"',
        ),
        (
            "---\nname: good\ndescription: d\nmetadata: [a]\n---\n",
            4,
            "metadata",
            "must be a mapping",
        ),
        (
            "---\nname: good\ndescription: d\nallowed-tools: {a: 1}\n---\n",
            4,
            "allowed-tools",
            "separated by spaces",
        ),
        ("---\nname: good\ndescription: d\nversion: 2\n---\n", 4, "version", "unknown key"),
    ],
)
def test_an_invalid_skill_md_is_refused_naming_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, words: str
) -> None:
    path = write_skill(tmp_path, "good", text)
    with pytest.raises(SkillError) as caught:
        parse_skill(path, "project")
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), line, field)
    assert str(error).startswith(f"{path}:{line}: ")
    if field is not None:
        assert f"front matter {field!r}: " in str(error)
    assert words in str(error)
    assert isinstance(error, UserError)  # exit code 2 in the CLI


def test_an_unknown_key_names_the_keys_the_specification_allows(tmp_path: Path) -> None:
    path = write_skill(tmp_path, "good", "---\nName: good\ndescription: d\n---\n")
    with pytest.raises(
        SkillError,
        match=r"allows name, description, license, compatibility, metadata, allowed-tools",
    ):
        parse_skill(path, "project")


def test_a_byte_order_mark_does_not_hide_the_front_matter(tmp_path: Path) -> None:
    path = write_skill(tmp_path, "bom")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert parse_skill(path, "user").name == "bom"


def test_an_unreadable_file_is_a_skill_error(tmp_path: Path) -> None:
    path = write_skill(tmp_path, "binary")
    path.write_bytes(b"---\nname: \xff\n---\n")
    with pytest.raises(SkillError, match="cannot read it"):
        parse_skill(path, "user")


# --- the files beside SKILL.md -----------------------------------------------


def test_files_lists_the_folder_except_skill_md_hidden_files_and_caches(tmp_path: Path) -> None:
    path = write_skill(tmp_path, "tool")
    for relative in (
        "scripts/run.sh",
        "references/REFERENCE.md",
        "assets/img/logo.png",
        "LICENSE.txt",
        ".hidden",
        ".git/config",
        "scripts/__pycache__/x.pyc",
        "scripts/.cache",
    ):
        (path.parent / relative).parent.mkdir(parents=True, exist_ok=True)
        (path.parent / relative).write_text("x")
    assert parse_skill(path, "project").files() == [
        "LICENSE.txt",
        "assets/img/logo.png",
        "references/REFERENCE.md",
        "scripts/run.sh",
    ]


def test_files_is_capped(tmp_path: Path) -> None:
    path = write_skill(tmp_path, "many")
    for index in range(30):
        (path.parent / f"f{index:02}.txt").write_text("x")
    skill = parse_skill(path, "project")
    assert skill.files(limit=10) == [f"f{index:02}.txt" for index in range(10)]
    assert len(skill.files()) == 30


# --- where skills are found ---------------------------------------------------


def test_skill_dirs_are_project_then_user_then_builtin(workspace: Path, tmp_path: Path) -> None:
    assert skill_dirs(workspace, {"HOME": "/home/ann"}) == [
        ("project", workspace / ".gm" / "skills"),
        ("user", Path("/home/ann/.config/gm/skills")),
        ("builtin", BUILTIN_DIR),
    ]
    xdg = {"HOME": "/home/ann", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    assert skill_dirs(workspace, xdg)[1] == ("user", tmp_path / "cfg" / "gm" / "skills")
    # The XDG Base Directory Specification: a relative XDG_CONFIG_HOME is ignored.
    relative = {"HOME": "/home/ann", "XDG_CONFIG_HOME": "cfg"}
    assert skill_dirs(workspace, relative)[1] == ("user", Path("/home/ann/.config/gm/skills"))
    assert [source for source, _ in skill_dirs(workspace, {})] == ["project", "builtin"]


def test_a_name_in_several_folders_comes_from_the_first(
    workspace: Path, environ: dict[str, str]
) -> None:
    builtin = BUILTINS[0]
    write_skill(project_skills(workspace), "shared", description="from the project")
    write_skill(user_skills(environ), "shared")
    write_skill(user_skills(environ), builtin)
    write_skill(user_skills(environ), "mine")
    found = discover_skills(workspace, environ)
    assert found.problems == ()
    assert found.get("shared").source == "project"
    assert found.get(builtin).source == "user"
    assert found.get("mine").source == "user"
    assert found.names() == sorted({"shared", "mine", *BUILTINS})
    assert {skill.source for skill in found if skill.name in BUILTINS[1:]} == {"builtin"}


def test_a_broken_skill_is_reported_and_hides_nothing(
    workspace: Path, environ: dict[str, str]
) -> None:
    broken = write_skill(project_skills(workspace), "broken", "---\nname: broken\n---\n")
    write_skill(project_skills(workspace), "fine")
    # A broken override does not hide the valid skill further down: it is reported.
    write_skill(project_skills(workspace), "mine", "no front matter")
    write_skill(user_skills(environ), "mine")
    (project_skills(workspace) / "empty-folder").mkdir()
    (project_skills(workspace) / ".hidden").mkdir()
    (project_skills(workspace) / "README.md").write_text("notes")

    found = discover_skills(workspace, environ)

    assert "fine" in found.names() and found.get("mine").source == "user"
    assert [(p.path, p.field) for p in found.problems] == [
        (str(broken), "description"),
        (str(project_skills(workspace) / "empty-folder"), None),
        (str(project_skills(workspace) / "mine" / "SKILL.md"), None),
    ]
    assert "no SKILL.md here" in str(found.problems[1])
    with pytest.raises(SkillError, match="'description': missing") as caught:
        found.get("broken")
    assert caught.value is found.problems[0]


def test_an_unknown_name_lists_the_known_ones(workspace: Path, environ: dict[str, str]) -> None:
    with pytest.raises(
        SkillError, match=r"no skill is called 'nope' \(known skills: focused-commit, "
    ):
        discover_skills(workspace, environ).get("nope")


def test_every_builtin_skill_is_valid_and_useful() -> None:
    assert {"run-tests", "focused-commit"} <= set(BUILTINS)
    for name in BUILTINS:
        skill = parse_skill(BUILTIN_DIR / name / "SKILL.md", "builtin")
        assert skill.name == name and len(skill.body.splitlines()) < 500  # the spec's advice
        assert "Use " in skill.description  # says when to use it, as the spec asks


def test_the_builtin_skills_name_only_tools_gm_has() -> None:
    from gm_agent.tools import builtin_tools

    tools = set(builtin_tools().names())
    mentioned = {"read_file", "list_dir", "search", "write_file", "edit_file", "run_shell"}
    assert mentioned <= tools
    text = "".join((BUILTIN_DIR / n / "SKILL.md").read_text() for n in BUILTINS)
    for wrong in ("list_files", "Bash(", "Read(", "shell_exec"):
        assert wrong not in text


# --- what the model sees ------------------------------------------------------


def test_the_catalog_is_one_line_per_skill_after_an_intro(tmp_path: Path) -> None:
    one = parse_skill(write_skill(tmp_path, "one"), "project")
    two = parse_skill(
        write_skill(tmp_path, "two", "---\nname: two\ndescription: >\n  Spans\n  lines.\n---\n"),
        "user",
    )
    lines = catalog([one, two]).splitlines()
    assert "`load_skill`" in lines[0]
    assert lines[1:] == ["- one: The one skill.", "- two: Spans lines."]
    assert catalog([]) == ""


def test_the_package_exports_what_it_names() -> None:
    module = importlib.import_module("gm_agent.skills")
    assert all(hasattr(module, name) for name in module.__all__)
    assert Skill.__module__ == "gm_agent.skills._skill"


# --- gm skills ---------------------------------------------------------------


def invoke(workspace: Path, environ: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["-C", str(workspace), "skills", *args], env={**environ, "COLUMNS": "60"}
    )
    return result.exit_code, result.stdout, result.stderr


def test_gm_skills_list_shows_name_source_and_a_cut_description(
    workspace: Path, environ: dict[str, str]
) -> None:
    write_skill(
        project_skills(workspace),
        "long-one",
        f"---\nname: long-one\ndescription: {'word ' * 40}\n---\n",
    )
    write_skill(project_skills(workspace), "bad", "---\nname: Bad\ndescription: d\n---\n")
    code, out, err = invoke(workspace, environ, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "DESCRIPTION"]
    row = next(line for line in lines if line.startswith("long-one "))
    assert row.split()[1] == "project" and row.endswith("…") and len(row) <= 60
    assert any(line.startswith("run-tests ") and " builtin " in line for line in lines)
    bad = project_skills(workspace) / "bad" / "SKILL.md"
    assert (
        err
        == f"gm: not a valid skill, left out: {bad}:2: front matter 'name': 'Bad' may hold only lowercase letters a-z, digits and single hyphens between them, e.g. 'bad'\n"
    )


def test_gm_skills_show_prints_front_matter_path_body_and_files(
    workspace: Path, environ: dict[str, str]
) -> None:
    path = write_skill(project_skills(workspace), "deploy", license="MIT")
    (path.parent / "scripts").mkdir()
    (path.parent / "scripts" / "go.sh").write_text("echo go")
    code, out, _ = invoke(workspace, environ, "show", "deploy")
    assert code == 0
    assert out == (
        f"name: deploy\nsource: project\npath: {path}\ndescription: The deploy skill.\n"
        "license: MIT\n\n# deploy\n\nDo it.\n\nFiles beside SKILL.md:\n  scripts/go.sh\n"
    )


def test_gm_skills_show_an_unknown_or_broken_skill_exits_2(
    workspace: Path, environ: dict[str, str]
) -> None:
    code, out, err = invoke(workspace, environ, "show", "nope")
    assert (code, out) == (2, "")
    assert err.startswith("gm: no skill is called 'nope' (known skills: ")
    broken = write_skill(project_skills(workspace), "half", "---\nname: half\n")
    code, _, err = invoke(workspace, environ, "show", "half")
    assert code == 2
    assert err == f"gm: {broken}:1: the front matter opened with '---' is never closed with '---'\n"


def test_the_real_gm_command_lists_the_project_skills(
    workspace: Path, environ: dict[str, str]
) -> None:
    write_skill(project_skills(workspace), "mine")
    done = gm("-C", str(workspace), "skills", "list", cwd=workspace, env=environ)
    assert done.returncode == 0, done.stderr
    assert any(line.split()[:2] == ["mine", "project"] for line in done.stdout.splitlines())
    assert done.stderr == ""


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    folder = tmp_path / "twice"
    folder.mkdir()
    (folder / "SKILL.md").write_text("---\nname: twice\ndescription: one\ndescription: two\n---\n")
    with pytest.raises(
        SkillError, match=r"SKILL.md:4: front matter 'description': given twice \(first on line 3\)"
    ):
        parse_skill(folder / "SKILL.md", "project")


def test_a_broken_project_skill_is_named_when_the_builtin_of_its_name_is_used(
    workspace: Path, environ: dict[str, str]
) -> None:
    builtin = BUILTINS[0]
    write_skill(project_skills(workspace), builtin, text="no front matter\n")
    found = discover_skills(workspace, environ)
    assert found.get(builtin).source == "builtin"
    shadowed = found.shadowed(builtin)
    assert shadowed is not None and "must begin with YAML front matter" in str(shadowed)
    assert found.shadowed("no-such") is None
    shown = gm("skills", "show", builtin, cwd=workspace, env=environ)
    assert shown.returncode == 0
    assert "gm: the builtin skill is used, because" in shown.stderr


def test_load_skill_cuts_a_huge_body_and_says_the_builtin_stands_in_for_a_broken_one(
    workspace: Path, environ: dict[str, str]
) -> None:
    from gm_agent.settings import ToolSettings
    from gm_agent.tools import Reply, ToolContext
    from gm_agent.tools.skills import LoadSkillArgs, load_skill

    def output(outcome: object) -> str:
        assert isinstance(outcome, Reply) and outcome.ok
        return outcome.output

    write_skill(
        project_skills(workspace),
        "huge",
        text=f"---\nname: huge\ndescription: Big.\n---\n{'x' * 5000}\n",
    )
    write_skill(project_skills(workspace), BUILTINS[0], text="broken\n")
    context = ToolContext(
        workspace, ToolSettings(read_cap_bytes=1000), tuple(skill_dirs(workspace, environ))
    )
    huge = output(load_skill(context, LoadSkillArgs(name="huge")))
    assert "x" * 1000 in huge and "x" * 1001 not in huge
    assert "cut at 1000 bytes of 5000" in huge
    stand_in = output(load_skill(context, LoadSkillArgs(name=BUILTINS[0])))
    assert "(this builtin skill is used because" in stand_in


def test_the_catalogue_is_capped_and_counts_what_it_leaves_out(tmp_path: Path) -> None:
    for index in range(30):
        write_skill(tmp_path, f"skill-{index:02d}", description="d" * 200)
    skills = list(discover_in([("project", tmp_path)]))
    listed = catalog(skills, max_chars=2000)
    assert len(listed) <= 2000 + 80
    shown = [line for line in listed.splitlines() if line.startswith("- skill-")]
    assert 0 < len(shown) < 30
    assert f"- ... and {30 - len(shown)} more, not listed" in listed
    assert catalog(skills).count("- skill-") == 30  # the default cap holds them all


def test_load_skill_reads_a_file_beside_the_skill_and_nothing_outside_it(
    workspace: Path, environ: dict[str, str], tmp_path: Path
) -> None:
    from gm_agent.errors import ToolError
    from gm_agent.settings import ToolSettings
    from gm_agent.tools import Reply, ToolContext
    from gm_agent.tools.skills import LoadSkillArgs, load_skill

    folder = write_skill(project_skills(workspace), "deploy").parent
    (folder / "scripts").mkdir()
    (folder / "scripts" / "check.sh").write_text("echo checked\n")
    (tmp_path / "secret.txt").write_text("not for the model\n")
    (folder / "link").symlink_to(tmp_path / "secret.txt")
    context = ToolContext(workspace, ToolSettings(), tuple(skill_dirs(workspace, environ)))
    listed = load_skill(context, LoadSkillArgs(name="deploy"))
    assert isinstance(listed, Reply) and "- scripts/check.sh" in listed.output
    read = load_skill(context, LoadSkillArgs(name="deploy", file="scripts/check.sh"))
    assert isinstance(read, Reply) and read.output.endswith("echo checked\n")
    for outside in ("../../../../secret.txt", str(tmp_path / "secret.txt"), "link", "."):
        with pytest.raises(ToolError, match="not inside the skill's folder"):
            load_skill(context, LoadSkillArgs(name="deploy", file=outside))
