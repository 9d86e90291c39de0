"""A household's day, replayed end to end: which moments paged the household, against which should.

The day (`tests/integration/household_day.py`) is a script of real photos with capture times:
strangers at the front door at night, a courier by day, the driveway camera covered, Anna (an
enrolled household member) coming home, a cat at night. The bench runs the integration test that
replays it (`tests/integration/test_household_day.py`): a real sidecar subprocess and Home
Assistant's test harness with the shipped notification blueprint and a notify action that
records what the phone gets. The test writes what happened to a file; the bench prints the day
side by side (time, camera, what, expected page?, paged?, notification tag), the precision and
recall of the pages, and writes it all to JSON.

A page is a notification whose tag the phone has not shown that day; one with a tag it already
shows replaces it (an incident's update). The test fails when the pages differ from the script;
the bench still prints and writes what happened then, and says so.

Usage (from the repository root):
  .venvs/ha-2025.4/bin/python bench/household_day.py [--member-hours 17:00-01:00|always]
      [--out FILE]

--member-hours: the hours Anna is expected at the front door (local; default 17:00-01:00, the
README's example). The rules judge them by when the photos were taken, whatever the time of the
replay.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.integration import household_day as day  # noqa: E402

TEST = "tests/integration/test_household_day.py"
RESULT_ENV = "HSAI_HOUSEHOLD_DAY_RESULT"
MEMBER_HOURS_ENV = "HSAI_HOUSEHOLD_DAY_MEMBER_HOURS"
DEFAULT_PYTHON = REPO_ROOT / ".venvs" / "ha-2025.4" / "bin" / "python"


def run_day(python: Path, member_hours: str | None) -> tuple[dict[str, Any], int, str, float]:
    """Run the test; return what it recorded, pytest's exit code, its last lines, seconds."""
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "day.json"
        env = {**os.environ, RESULT_ENV: str(result_file)}
        env.pop(MEMBER_HOURS_ENV, None)
        if member_hours:
            env[MEMBER_HOURS_ENV] = member_hours
        started = time.monotonic()
        completed = subprocess.run(
            [str(python), "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider",
             "--rootdir", str(REPO_ROOT), "--tb=line"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
        )
        seconds = time.monotonic() - started
        tail = "\n".join(
            line for line in completed.stdout.splitlines()[-15:]
            if line.strip() and not line.startswith(("DEBUG", "INFO"))
        )
        if not result_file.is_file():
            raise SystemExit(
                f"the replay recorded nothing (pytest exit code {completed.returncode}):\n"
                f"{completed.stdout[-3000:]}\n{completed.stderr[-2000:]}"
            )
        return json.loads(result_file.read_text()), completed.returncode, tail, seconds


def print_day(result: dict[str, Any]) -> None:
    rows = result["rows"]
    print(f"The day of {result['date']} ({result['time_zone']}), replayed in "
          f"{result['replay_s']} s")
    print()
    print(day.table(rows))
    print()
    for row in rows:
        for event in row["events"]:
            if event["incident_update"]:
                continue
            print(f"  {row['time']} {event['camera_id']:<10} {event['raw_risk_level']:>8} -> "
                  f"{event['risk_level']:<8} alert={event['alert']!s:<5} "
                  f"reason={event['alert_reason'] or '-':<19} {event['summary']}")
    score = result["score"]

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    print()
    print(f"pages expected {score['expected_pages']}, sent {score['pages']}, right "
          f"{score['correct_pages']}: precision {share(score['precision'])}, "
          f"recall {share(score['recall'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--member-hours",
        help="Anna's expected hours (default 17:00-01:00; 'always' for any time)",
    )
    parser.add_argument("--python", type=Path, default=DEFAULT_PYTHON,
                        help="the Home Assistant environment's interpreter")
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "bench" / "results" / "household_day.json")
    args = parser.parse_args()

    result, code, tail, seconds = run_day(args.python, args.member_hours)
    print_day(result)
    passed = code == 0
    print()
    print("the test passed: the pages are the script's" if passed
          else f"the test failed (pytest exit code {code}):\n{tail}")
    record = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "system": f"{platform.system()} {platform.machine()}",
            "cpus": os.cpu_count(),
            "load_average": [round(value, 2) for value in os.getloadavg()],
        },
        "test_passed": passed,
        "test_seconds": round(seconds, 1),
        "cast": day.cast(),
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
