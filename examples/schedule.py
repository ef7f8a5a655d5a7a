"""Scheduled functions: a cron expression in a time zone, and a fixed period.

``modalc build`` (deploy mode) turns each schedule into a periodic Nomad job.

    modalc build examples/schedule.py -o deploy/
"""

import datetime

import modal

app = modal.App("schedule-demo")


@app.function(schedule=modal.Cron("30 9 * * 1-5", timezone="America/New_York"))
def morning_report() -> str:
    """Every weekday at 9:30 in New York."""
    today = datetime.date(2024, 1, 1)
    return f"report for {today.isoformat()}: {sum(range(100))}"


@app.function(schedule=modal.Period(hours=1))
def hourly_cleanup() -> int:
    """Every hour, on the hour."""
    removed = [n for n in range(50) if n % 7 == 0]
    print(f"removed {len(removed)} stale entries")
    return len(removed)


@app.local_entrypoint()
def main():
    print(morning_report.remote())
    print(hourly_cleanup.remote())
