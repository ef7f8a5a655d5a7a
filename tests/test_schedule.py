"""``modal.Period`` → Nomad cron, sub-minute included; what cron cannot express exactly is a clear error.

Nomad validates a periodic spec with hashicorp/cronexpr, which reads a
seconds field in its 7-field form (second minute hour dom month dow year);
each expected expression is checked for the fire times it denotes, and a
built job with a 5-second period is checked with Nomad's schema.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent_runtime.sdk.objects import Period
from compiler.errors import UserError
from compiler.lower import BuildOptions
from compiler.lower.schedule import period_to_cron
from compiler.phases import CompilerData
from compiler.refs import parse_import_ref

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent / "shared" / "nomad"))
import nomad_schema  # noqa: E402

LOC = ("app.py", 3)


def _fires(expr: str) -> list[int]:
    """The seconds of one day at which a `*/n`-or-`*` expression fires (a tiny cronexpr for these forms)."""
    fields = expr.split()
    if len(fields) == 5:
        fields = ["0", *fields, "*"]
    sec, minute, hour = fields[:3]

    def hits(field: str, span: int) -> set[int]:
        if field == "*":
            return set(range(span))
        if field.startswith("*/"):
            return set(range(0, span, int(field[2:])))
        return {int(field)}

    assert fields[3:6] == ["*", "*", "*"], expr
    return sorted(h * 3600 + m * 60 + s for h in hits(hour, 24) for m in hits(minute, 60) for s in hits(sec, 60))


@pytest.mark.parametrize("kw, expected", [
    ({"seconds": 1}, "* * * * * * *"),
    ({"seconds": 5}, "*/5 * * * * * *"),
    ({"seconds": 30}, "*/30 * * * * * *"),
    ({"minutes": 1}, "* * * * *"),
    ({"seconds": 120}, "*/2 * * * *"),
    ({"minutes": 15}, "*/15 * * * *"),
    ({"hours": 6}, "0 */6 * * *"),
    ({"days": 1}, "0 0 * * *"),
])
def test_a_period_that_divides_the_day_is_an_exact_cron(kw: dict[str, int], expected: str) -> None:
    cron = period_to_cron(Period(**kw), LOC)
    assert cron == expected
    p = Period(**kw)
    step = int(p.seconds + 60 * p.minutes + 3600 * p.hours + 86400 * p.days)
    assert _fires(cron) == list(range(0, 86400, step))
    assert nomad_schema._cron_ok(cron)


@pytest.mark.parametrize("kw, why", [
    ({"seconds": 7}, "7 seconds does not divide a minute"),
    ({"seconds": 90}, "90 seconds is not a whole number of minutes"),
    ({"seconds": 0.5}, "resolution of one second"),
    ({"hours": 5}, "5 hours does not divide a day"),
    ({"days": 2}, "every N days"),
])
def test_a_period_cron_cannot_express_is_a_clear_error(kw: dict[str, float], why: str) -> None:
    with pytest.raises(UserError) as caught:
        period_to_cron(Period(**kw), LOC)  # type: ignore[arg-type]
    assert "cannot be expressed as a Nomad periodic job" in caught.value.message and why in caught.value.message
    assert caught.value.location == LOC and caught.value.hint


def test_a_five_second_period_builds_a_valid_periodic_job(tmp_path: Path) -> None:
    script = tmp_path / "ticker.py"
    script.write_text("import modal\n\napp = modal.App('ticker')\n\n\n@app.function(schedule=modal.Period(seconds=5))\n"
                      "def tick():\n    return 1\n")
    files = CompilerData(parse_import_ref(str(script)), BuildOptions(default_python="3.11")).outputs("hcl")
    (rel, hcl), = [(r, v) for r, v in files.items() if r.endswith(".nomad.hcl")]
    assert '"*/5 * * * * * *"' in str(hcl)
    path = tmp_path / Path(rel).name
    path.write_text(str(hcl))
    assert nomad_schema.validate_hcl_file(str(path), warnings=True) == []
    job, problems = nomad_schema.hcl_to_api_job(str(path))
    assert problems == [] and job["Periodic"]["Specs"] == ["*/5 * * * * * *"]
