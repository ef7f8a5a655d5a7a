"""Packages that exist only inside the image: ``with image.imports():``.

``torch`` need not be installed where modalc runs; the import fails quietly
on the client and happens for real inside the container.

    modalc build examples/imports_guard.py -o deploy/
"""

import modal

image = modal.Image.debian_slim(python_version="3.11").pip_install("torch==2.4.0")

with image.imports():
    import torch

app = modal.App("imports-guard")


@app.function(image=image)
def tensor_sum(values: list[float]) -> float:
    """Sums with torch; only callable where torch is installed."""
    return float(torch.tensor(values).sum())


@app.function(image=image)
def plain_sum(values: list[float]) -> float:
    """Needs nothing but Python, so it also runs without torch."""
    return float(sum(values))


@app.local_entrypoint()
def main():
    print(plain_sum.remote([1.0, 2.0, 3.5]))
