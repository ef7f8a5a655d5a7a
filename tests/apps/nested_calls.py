"""A test app whose functions call other functions from inside their allocations, in every call form.

Used by tests/test_nested.py on the local backend and against the Nomad test double. The entrypoint prints
one ``name: value`` line per check, so a test reads what each nested call returned.
"""

import asyncio

import modal

app = modal.App("nested")


@app.function(retries=modal.Retries(max_retries=2, initial_delay=0.0, backoff_coefficient=1.0))
def square(x: int) -> int:
    print(f"square {x}")
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x


@app.function()
def add(a: int, b: int) -> int:
    return a + b


@app.function()
def fanout(n: int) -> dict:
    """Every call form, from inside a function."""
    out: dict = {}
    out["remote"] = square.remote(7)
    out["map"] = list(square.map(range(n)))
    out["map_exc"] = [type(v).__name__ if isinstance(v, Exception) else v
                      for v in square.map([2, -1, 3], return_exceptions=True)]
    out["unordered"] = sorted(square.map(range(5), order_outputs=False))
    out["starmap"] = list(add.starmap([(1, 2), (3, 4)]))
    square.for_each(range(3))
    calls = [square.spawn(i) for i in range(3)]
    out["gather"] = modal.FunctionCall.gather(*calls)
    out["from_id"] = modal.FunctionCall.from_id(calls[0].object_id).get(timeout=60)
    try:
        square.remote(-5)
    except ValueError as exc:
        out["raised"] = str(exc)
    out["cls"] = Counter(start=10).bump.remote(5)
    out["gen"] = list(countdown.remote_gen(3))

    async def aio() -> list:
        return [await square.remote.aio(4), [v async for v in square.map.aio([1, 2])]]

    out["aio"] = asyncio.run(aio())
    return out


@app.function()
def fact(n: int) -> int:
    """Recursion: a function calling itself."""
    return 1 if n <= 1 else n * fact.remote(n - 1)


@app.function()
def countdown(n: int):
    for i in range(n, 0, -1):
        yield square.remote(i)


@app.function()
def gen_caller(n: int):
    """A generator that makes nested calls while it yields."""
    yield from add.map(range(n), range(n))


@app.function()
def total(n: int) -> int:
    return sum(square.map(range(n)))


@app.function(timeout=2)
def slow() -> None:
    import time

    time.sleep(30)


@app.function()
def calls_slow() -> str:
    try:
        slow.remote()
    except Exception as exc:
        return type(exc).__name__
    return "no timeout"


@app.function()
def cancel_spawned() -> str:
    call = slow.spawn()
    call.cancel()
    return "cancelled"


@app.function()
def variant() -> None:
    Counter.with_options(cpu=2)(start=1).bump.remote(1)


@app.function(max_containers=3)  # all three sleep at once, whatever the CPU count
def sleeper(pid_dir: str, i: int) -> None:
    import os
    import time

    with open(os.path.join(pid_dir, f"inner-{i}"), "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(120)


@app.function()
def sleepy_fanout(pid_dir: str, n: int) -> None:
    """A fan-out that runs until the client is stopped (the cleanup test)."""
    import os

    with open(os.path.join(pid_dir, "outer"), "w") as fh:
        fh.write(str(os.getpid()))
    list(sleeper.map([pid_dir] * n, range(n)))


@app.cls()
class Counter:
    start: int = modal.parameter(default=0)

    @modal.method()
    def bump(self, by: int) -> int:
        return add.remote(self.start, by)


@app.local_entrypoint()
def main(n: int = 4, what: str = "fanout", pid_dir: str = "") -> None:
    if what == "fanout":
        for key, value in fanout.remote(n).items():
            print(f"{key}: {value}")
    elif what == "fact":
        print(f"fact: {fact.remote(n)}")
    elif what == "gen":
        print(f"gen: {list(gen_caller.remote_gen(n))}")
    elif what == "total":
        print(f"total: {total.remote(n)}")
    elif what == "timeout":
        print(f"timeout: {calls_slow.remote()}")
    elif what == "cancel":
        print(f"cancel: {cancel_spawned.remote()}")
    elif what == "variant":
        variant.remote()
    elif what == "sleepy":
        sleepy_fanout.remote(pid_dir, n)
