"""Named secrets and a shared volume.

The secret's values never appear in the job specs: Nomad reads them from a
Nomad Variable at run time. Both functions mount the same volume at /data.

    modalc secret create db-credentials DB_USER=me DB_PASSWORD=hunter2
    modalc run examples/secrets_volumes.py
"""

import os

import modal

app = modal.App("secrets-volumes")
db = modal.Secret.from_name("db-credentials", required_keys=["DB_USER", "DB_PASSWORD"])
data = modal.Volume.from_name("shared-data", create_if_missing=True)


@app.function(secrets=[db], volumes={"/data": data})
def write_report(name: str, rows: int) -> str:
    """Writes a small CSV report into the volume."""
    user = os.environ.get("DB_USER", "nobody")
    lines = [f"{i},{i * i}" for i in range(rows)]
    path = os.path.join("/data", f"{name}.csv")
    os.makedirs("/data", exist_ok=True)
    with open(path, "w") as fh:
        fh.write(f"# written by {user}\n" + "\n".join(lines) + "\n")
    data.commit()
    return path


@app.function(volumes={"/data": data})
def read_report(name: str) -> int:
    """Counts the rows of a report written by ``write_report``."""
    data.reload()
    with open(os.path.join("/data", f"{name}.csv")) as fh:
        return sum(1 for line in fh if not line.startswith("#"))


@app.local_entrypoint()
def main(rows: int = 5):
    path = write_report.remote("squares", rows)
    print(f"wrote {path}: {read_report.remote('squares')} rows")
