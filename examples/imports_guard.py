"""Packages that exist only inside the image: ``with image.imports():``.

``torch`` need not be installed where modalc runs: the import fails quietly
on the client, and in containers of other images; it happens for real inside
a container of ``torch_image``. ``main`` only calls ``plain_sum``, so the app
runs here without torch.

    modalc build examples/imports_guard.py -o deploy/
"""

import modal

image = modal.Image.debian_slim(python_version="3.11")
torch_image = image.pip_install("torch==2.4.0")

with torch_image.imports():
    import torch

app = modal.App("imports-guard")


@app.function(image=torch_image)
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
