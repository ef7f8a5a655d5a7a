"""A small ETL pipeline: extract → transform → load, fanned out with ``.map``.

    modalc run examples/pipeline.py --n 20
"""

import modal

app = modal.App("etl-pipeline")
image = modal.Image.debian_slim(python_version="3.11")


@app.function(image=image)
def extract(n: int) -> list[dict]:
    """Produces ``n`` raw records."""
    return [{"id": i, "name": f"item-{i}", "price_cents": 100 + 37 * i} for i in range(n)]


@app.function(image=image, cpu=0.5, memory=256)
def transform(record: dict) -> dict:
    """Cleans one record; runs once per record through ``.map``."""
    return {"id": record["id"], "name": record["name"].upper(), "price": record["price_cents"] / 100}


@app.function(image=image, memory=(256, 512))
def load(records: list[dict]) -> dict:
    """Aggregates the transformed records."""
    total = sum(r["price"] for r in records)
    return {"count": len(records), "total": round(total, 2)}


@app.local_entrypoint()
def main(n: int = 10):
    raw = extract.remote(n)
    clean = list(transform.map(raw))
    print(load.remote(clean))
