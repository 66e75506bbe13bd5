"""The README's configuration table names every environment variable the settings read."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READ = re.compile(r"""env(?:\.[a-z_]+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def test_every_setting_read_from_the_environment_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = {
        name
        for path in (ROOT / "chatai" / "settings").glob("*.py")
        for name in READ.findall(path.read_text(encoding="utf-8"))
    }
    assert "DATABASE_URL" in names  # the pattern sees the settings
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert not missing, f"not in the README's configuration section: {missing}"
