"""Hello, modalc: a remote call, a parallel map and a local entrypoint.

    modalc run examples/hello.py
"""

import modal

app = modal.App("hello")


@app.function()
def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


@app.local_entrypoint()
def main(n: int = 10):
    print("square(7) =", square.remote(7))
    total = sum(square.map(range(n)))
    print(f"sum of squares below {n} = {total}")
